"""The ops toolkit's work, split by subject; the management commands only parse arguments and print.

stacks      read stacks, their outputs, and the outputs files other commands use
templates   synthesize, lint and size a template; upload a large one
changesets  create, wait for, describe and delete change sets; read a stack's or a change set's template
diff        what a deploy changes: parameters, properties, IAM grants and security-group rules (pure)
events      follow a stack operation's events until it ends
deploy      plan and apply a stack deploy, and the recovery of stuck stacks
rotation_code  the database secret rotation function's bundle, uploaded before a change set that names it runs
destroy     delete a stack and say what survives
status      a stack's status, events, outputs, live release and drift
cdn         CloudFront invalidations
bundle      release bundles: the project and a Linux wheel of every pinned requirement
release     uploading a release, migrations, the release parameter, instance refreshes
schedule    one-off sale windows on the Auto Scaling group
preflight   is the live app stack ready for a sale: the checklist and the monthly cost
probes      HTTP probes of the running shop: the product cache, /health
image       baked app images: build with Image Builder, publish in the image parameter, age against the release
"""
