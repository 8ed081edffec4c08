"""VPC in three AZs: public and private subnets, NAT, the S3 gateway endpoint, interface endpoints, flow logs."""

import ipaddress
from dataclasses import dataclass

from troposphere import Equals, GetAtt, GetAZs, If, Ref, Select, Sub, Template, ec2, iam

from opsinfra.cfn.common import flag_parameter, log_group, name_tags, parameter, service_trust
from opsinfra.stacks import StackSettings

VPC_CIDR = "10.0.0.0/16"
AZ_COUNT = 3
# Third octets of the /24s: public 10.0.1-3.0, private 10.0.11-13.0.
PUBLIC_OCTETS = (1, 2, 3)
PRIVATE_OCTETS = (11, 12, 13)


@dataclass(frozen=True)
class Network:
    vpc: Ref
    public_subnets: list[Ref]
    private_subnets: list[Ref]
    interface_endpoints_condition: str
    egress_routes: list[str]  # logical ids: instances that boot before them cannot reach their packages


def subnet_cidr(third_octet: int) -> str:
    """The /24 of VPC_CIDR with this third octet, computed here because moto has no Fn::Cidr."""
    return str(list(ipaddress.ip_network(VPC_CIDR).subnets(new_prefix=24))[third_octet])


def add_network(t: Template, settings: StackSettings) -> Network:
    """The VPC, its subnets and routes; NAT per AZ or one (NatGateways), and rejected-traffic flow logs."""
    nat_count = parameter(
        t,
        "NatGateways",
        default=str(settings.nat_gateways),
        AllowedValues=["1", "3"],
        description="NAT gateways: 3 (one per AZ, an AZ outage keeps egress) or 1 (cheaper, staging).",
    )
    t.add_condition("NetworkNatPerAz", Equals(Ref(nat_count), "3"))

    vpc = t.add_resource(
        ec2.VPC(
            "NetworkVpc",
            CidrBlock=VPC_CIDR,
            EnableDnsSupport=True,
            EnableDnsHostnames=True,
            Tags=name_tags(Sub("${AWS::StackName}")),
        )
    )
    gateway = t.add_resource(ec2.InternetGateway("NetworkInternetGateway"))
    attachment = t.add_resource(
        ec2.VPCGatewayAttachment("NetworkGatewayAttachment", VpcId=Ref(vpc), InternetGatewayId=Ref(gateway))
    )
    public_table = t.add_resource(ec2.RouteTable("NetworkPublicRouteTable", VpcId=Ref(vpc)))
    t.add_resource(
        ec2.Route(
            "NetworkPublicRoute",
            DependsOn=attachment.title,
            RouteTableId=Ref(public_table),
            DestinationCidrBlock="0.0.0.0/0",
            GatewayId=Ref(gateway),
        )
    )

    public_subnets, private_subnets, private_tables, nats = [], [], [], []
    for index in range(AZ_COUNT):
        number = index + 1
        zone = Select(index, GetAZs(""))
        public = t.add_resource(
            ec2.Subnet(
                f"NetworkPublicSubnet{number}",
                VpcId=Ref(vpc),
                CidrBlock=subnet_cidr(PUBLIC_OCTETS[index]),
                AvailabilityZone=zone,
                Tags=name_tags(Sub(f"${{AWS::StackName}}-public-{number}")),
            )
        )
        t.add_resource(
            ec2.SubnetRouteTableAssociation(
                f"NetworkPublicSubnet{number}RouteTable", SubnetId=Ref(public), RouteTableId=Ref(public_table)
            )
        )
        private = t.add_resource(
            ec2.Subnet(
                f"NetworkPrivateSubnet{number}",
                VpcId=Ref(vpc),
                CidrBlock=subnet_cidr(PRIVATE_OCTETS[index]),
                AvailabilityZone=zone,
                Tags=name_tags(Sub(f"${{AWS::StackName}}-private-{number}")),
            )
        )
        table = t.add_resource(
            ec2.RouteTable(
                f"NetworkPrivateRouteTable{number}",
                VpcId=Ref(vpc),
                Tags=name_tags(Sub(f"${{AWS::StackName}}-private-{number}")),
            )
        )
        t.add_resource(
            ec2.SubnetRouteTableAssociation(
                f"NetworkPrivateSubnet{number}RouteTable", SubnetId=Ref(private), RouteTableId=Ref(table)
            )
        )
        condition = None if index == 0 else "NetworkNatPerAz"
        eip = t.add_resource(ec2.EIP(f"NetworkNatAddress{number}", Domain="vpc", DependsOn=attachment.title))
        nat = t.add_resource(
            ec2.NatGateway(f"NetworkNatGateway{number}", AllocationId=GetAtt(eip, "AllocationId"), SubnetId=Ref(public))
        )
        if condition:
            eip.Condition = condition
            nat.Condition = condition
        nats.append(nat)
        public_subnets.append(Ref(public))
        private_subnets.append(Ref(private))
        private_tables.append(table)

    egress_routes = []
    for index, table in enumerate(private_tables):
        own_nat = Ref(nats[index])
        egress_routes.append(f"NetworkPrivateRoute{index + 1}")
        t.add_resource(
            ec2.Route(
                f"NetworkPrivateRoute{index + 1}",
                RouteTableId=Ref(table),
                DestinationCidrBlock="0.0.0.0/0",
                NatGatewayId=own_nat if index == 0 else If("NetworkNatPerAz", own_nat, Ref(nats[0])),
            )
        )

    t.add_resource(
        ec2.VPCEndpoint(
            "NetworkS3Endpoint",
            VpcId=Ref(vpc),
            ServiceName=Sub("com.amazonaws.${AWS::Region}.s3"),
            VpcEndpointType="Gateway",
            RouteTableIds=[Ref(table) for table in private_tables],
        )
    )
    endpoints = flag_parameter(
        t,
        "InterfaceEndpoints",
        default=settings.interface_endpoints,
        description="Interface endpoints for Secrets Manager and SSM, so secret reads never leave the VPC.",
    )
    t.add_condition("NetworkInterfaceEndpoints", Equals(Ref(endpoints), "true"))
    add_flow_logs(t, vpc=vpc, settings=settings)
    return Network(
        vpc=Ref(vpc),
        public_subnets=public_subnets,
        private_subnets=private_subnets,
        interface_endpoints_condition="NetworkInterfaceEndpoints",
        egress_routes=egress_routes,
    )


def add_interface_endpoints(t: Template, *, network: Network, security_group: Ref) -> None:
    """Secrets Manager and SSM endpoints in the private subnets, reached from the app security group."""
    for title, service in (("NetworkSecretsManagerEndpoint", "secretsmanager"), ("NetworkSsmEndpoint", "ssm")):
        t.add_resource(
            ec2.VPCEndpoint(
                title,
                Condition=network.interface_endpoints_condition,
                VpcId=network.vpc,
                ServiceName=Sub(f"com.amazonaws.${{AWS::Region}}.{service}"),
                VpcEndpointType="Interface",
                PrivateDnsEnabled=True,
                SubnetIds=network.private_subnets,
                SecurityGroupIds=[security_group],
            )
        )


def add_flow_logs(t: Template, *, vpc: ec2.VPC, settings: StackSettings) -> None:
    """Rejected traffic of the whole VPC, kept log_retention_days: what a security group or ACL refused is what an
    investigation needs, and accepted traffic at peak would cost more in CloudWatch Logs than the instances."""
    group = t.add_resource(log_group("NetworkFlowLogGroup", retention_days=settings.log_retention_days))
    role = t.add_resource(
        iam.Role(
            "NetworkFlowLogRole",
            AssumeRolePolicyDocument=service_trust(
                "vpc-flow-logs.amazonaws.com", StringEquals={"aws:SourceAccount": Ref("AWS::AccountId")}
            ),
            Policies=[
                iam.Policy(
                    PolicyName="flow-logs",
                    PolicyDocument={
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                                "Resource": GetAtt(group, "Arn"),
                            }
                        ],
                    },
                )
            ],
        )
    )
    t.add_resource(
        ec2.FlowLog(
            "NetworkFlowLog",
            ResourceId=Ref(vpc),
            ResourceType="VPC",
            TrafficType="REJECT",
            LogDestinationType="cloud-watch-logs",
            LogGroupName=Ref(group),
            DeliverLogsPermissionArn=GetAtt(role, "Arn"),
        )
    )
