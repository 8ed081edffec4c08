"""IAM proven by execution: a policy evaluator, the roles as the synthesized templates define them, a recorder of
the AWS calls the ops commands make, and the permissions CloudFormation's resource handlers need (docs/iam.md)."""
