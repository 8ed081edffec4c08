"""RDS PostgreSQL 15, its master and app-role secrets, and the RDS Proxy in front.

The master password is RDS's own (ManageMasterUserPassword): RDS keeps it in a secret and rotates it every 7 days.
The app role's secret rotates with the stack's own multi-user function (opsinfra/cfn/rotation.py): it alternates
between shop_app and shop_app_clone, so the password being replaced keeps working until every client has the new one.
"""

from dataclasses import dataclass

from troposphere import GetAtt, Ref, Sub, Template, iam, rds, secretsmanager

from opsinfra.cfn.common import SECRETS_KEY_REASON, checkov_skip, log_group, parameter, service_trust, stateful
from opsinfra.cfn.network import Network
from opsinfra.cfn.secrets import RDS_REJECTED, SQL_UNSAFE
from opsinfra.cfn.security_groups import SecurityGroups
from opsinfra.stacks import StackSettings

DATABASE_NAME = "shop"
MASTER_USER = "shop_admin"
# The application's own role: not the master user. Migrations create it with timezone UTC and statement_timeout
# set on the role, because the proxy pins a session on SET and rejects a startup `options` parameter.
APP_USER = "shop_app"
PROXY_IDLE_CLIENT_TIMEOUT = 1800
PROXY_MAX_IDLE_PERCENT = 50


@dataclass(frozen=True)
class Database:
    instance: Ref
    proxy_name: Ref
    proxy_endpoint: GetAtt
    master_secret: GetAtt
    app_user_secret: Ref
    app_user_secret_attachment: str  # logical id: the secret has host and port once it exists


def _app_user_secret(t: Template, *, master_secret: GetAtt, port: int) -> Ref:
    """The app role's secret, in the shape the multi-user rotation function reads: masterarn names the secret it
    rotates with, and the attachment adds host and port."""
    secret = secretsmanager.Secret(
        "DatabaseAppSecret",
        Description="The application's database role (DB_SECRET_ARN), rotated every 30 days",
        GenerateSecretString=secretsmanager.GenerateSecretString(
            SecretStringTemplate=Sub(
                f'{{"username":"{APP_USER}","engine":"postgres","dbname":"{DATABASE_NAME}","port":{port},'
                '"masterarn":"${Master}"}',
                Master=master_secret,
            ),
            GenerateStringKey="password",
            PasswordLength=32,
            ExcludeCharacters=RDS_REJECTED + SQL_UNSAFE,
        ),
    )
    # Kept with the database's final snapshot: a restored database still has this role and its password.
    stateful(secret, "Retain")
    return Ref(t.add_resource(checkov_skip(secret, CKV_AWS_149=SECRETS_KEY_REASON)))


def add_database(
    t: Template, *, settings: StackSettings, network: Network, groups: SecurityGroups, port: int
) -> Database:
    version = parameter(
        t,
        "DatabaseEngineVersion",
        default=settings.db_engine_version,
        AllowedPattern=r"^15\.\d+$",
        description="PostgreSQL 15 minor version (the parameter group family is postgres15).",
    )
    subnets = t.add_resource(
        rds.DBSubnetGroup(
            "DatabaseSubnetGroup", DBSubnetGroupDescription="Private subnets", SubnetIds=network.private_subnets
        )
    )
    parameters = t.add_resource(
        rds.DBParameterGroup(
            "DatabaseParameterGroup",
            Description="shop PostgreSQL 15",
            Family="postgres15",
            Parameters={
                "log_min_duration_statement": "1000",
                "log_lock_waits": "1",
                # TLS on every connection, the proxy's included.
                "rds.force_ssl": "1",
            },
        )
    )
    identifier = f"{settings.stack_name}-postgres"
    # RDS creates its log groups without a retention unless they exist first.
    log_groups = [
        t.add_resource(
            log_group(
                f"DatabaseLogGroup{kind.title()}",
                LogGroupName=f"/aws/rds/instance/{identifier}/{kind}",
                retention_days=settings.log_retention_days,
            )
        )
        for kind in ("postgresql", "upgrade")
    ]
    instance = t.add_resource(
        rds.DBInstance(
            "DatabaseInstance",
            DependsOn=[group.title for group in log_groups],
            DBInstanceIdentifier=identifier,
            Engine="postgres",
            EngineVersion=Ref(version),
            DBInstanceClass=settings.db_instance_class,
            DBName=DATABASE_NAME,
            Port=str(port),
            MasterUsername=MASTER_USER,
            ManageMasterUserPassword=True,
            AllocatedStorage="20",
            MaxAllocatedStorage=100,
            StorageType="gp3",
            StorageEncrypted=True,
            MultiAZ=settings.db_multi_az,
            BackupRetentionPeriod=7,
            CopyTagsToSnapshot=True,
            DeletionProtection=True,
            EnablePerformanceInsights=True,
            PerformanceInsightsRetentionPeriod=7,
            EnableIAMDatabaseAuthentication=True,
            EnableCloudwatchLogsExports=["postgresql", "upgrade"],
            AutoMinorVersionUpgrade=True,
            PubliclyAccessible=False,
            DBSubnetGroupName=Ref(subnets),
            DBParameterGroupName=Ref(parameters),
            VPCSecurityGroups=[groups.database],
        )
    )
    stateful(instance, "Snapshot")
    checkov_skip(
        instance,
        CKV_AWS_118=(
            "Enhanced Monitoring writes to the account-wide RDSOSMetrics log group, which no stack can give a "
            "retention; Performance Insights and CloudWatch cover the load"
        ),
    )
    if not settings.db_multi_az:
        checkov_skip(instance, CKV_AWS_157="staging runs single-AZ to halve its cost; production is Multi-AZ")
    master_secret = GetAtt(instance, "MasterUserSecret.SecretArn")
    app_user_secret = _app_user_secret(t, master_secret=master_secret, port=port)
    attachment = t.add_resource(
        secretsmanager.SecretTargetAttachment(
            "DatabaseAppSecretAttachment",
            SecretId=app_user_secret,
            TargetId=Ref(instance),
            TargetType="AWS::RDS::DBInstance",
        )
    )
    proxy_name, endpoint = _add_proxy(
        t,
        settings=settings,
        network=network,
        groups=groups,
        instance=instance,
        secrets=[master_secret, app_user_secret],
    )
    return Database(
        instance=Ref(instance),
        proxy_name=proxy_name,
        proxy_endpoint=endpoint,
        master_secret=master_secret,
        app_user_secret=app_user_secret,
        app_user_secret_attachment=attachment.title,
    )


def _add_proxy(t: Template, *, settings: StackSettings, network: Network, groups: SecurityGroups, instance, secrets):
    role = t.add_resource(
        iam.Role(
            "DatabaseProxyRole",
            AssumeRolePolicyDocument=service_trust("rds.amazonaws.com"),
            Policies=[
                iam.Policy(
                    PolicyName="read-database-secrets",
                    PolicyDocument={
                        "Version": "2012-10-17",
                        "Statement": [
                            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secrets}
                        ],
                    },
                )
            ],
        )
    )
    name = f"{settings.stack_name}-proxy"
    proxy_logs = t.add_resource(
        log_group(
            "DatabaseProxyLogGroup",
            LogGroupName=f"/aws/rds/proxy/{name}",
            retention_days=settings.log_retention_days,
        )
    )
    proxy = t.add_resource(
        rds.DBProxy(
            "DatabaseProxy",
            DependsOn=proxy_logs.title,
            DBProxyName=name,
            EngineFamily="POSTGRESQL",
            RequireTLS=True,
            IdleClientTimeout=PROXY_IDLE_CLIENT_TIMEOUT,
            DebugLogging=False,
            RoleArn=GetAtt(role, "Arn"),
            Auth=[rds.AuthFormat(AuthScheme="SECRETS", SecretArn=secret, IAMAuth="DISABLED") for secret in secrets],
            VpcSubnetIds=network.private_subnets,
            VpcSecurityGroupIds=[groups.proxy],
        )
    )
    t.add_resource(
        rds.DBProxyTargetGroup(
            "DatabaseProxyTargetGroup",
            DBProxyName=Ref(proxy),
            TargetGroupName="default",
            DBInstanceIdentifiers=[Ref(instance)],
            ConnectionPoolConfigurationInfo=rds.ConnectionPoolConfigurationInfoFormat(
                MaxConnectionsPercent=settings.proxy_max_connections_percent,
                MaxIdleConnectionsPercent=PROXY_MAX_IDLE_PERCENT,
                # A borrow and then a statement (statement_timeout 5 s) fit inside the app's own 8 s deadline
                # (settings.DB_DEADLINE_MS): a request that cannot get a connection gets the proxy's error, a 503,
                # well inside the worker timeout. The chain: docs/timeouts.md.
                ConnectionBorrowTimeout=settings.proxy_borrow_timeout,
            ),
        )
    )
    return Ref(proxy), GetAtt(proxy, "Endpoint")
