"""purge_cdn against a distribution created in moto."""

import json

import boto3
import pytest
from django.core.management.base import CommandError

from tests.opsinfra.conftest import run


@pytest.fixture
def distribution_id(aws_env):
    cloudfront = boto3.client("cloudfront")
    config = {
        "CallerReference": "test",
        "Comment": "shop",
        "Enabled": True,
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "alb",
                    "DomainName": "alb.example.com",
                    "CustomOriginConfig": {
                        "HTTPPort": 80,
                        "HTTPSPort": 443,
                        "OriginProtocolPolicy": "http-only",
                    },
                }
            ],
        },
        "DefaultCacheBehavior": {
            "TargetOriginId": "alb",
            "ViewerProtocolPolicy": "redirect-to-https",
            "CachePolicyId": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
        },
    }
    return cloudfront.create_distribution(DistributionConfig=config)["Distribution"]["Id"]


def invalidations(distribution_id: str) -> list[dict]:
    listing = boto3.client("cloudfront").list_invalidations(DistributionId=distribution_id)["InvalidationList"]
    return listing.get("Items", [])


def test_purge_default_path_from_outputs_file_and_wait(distribution_id, outputs_dir):
    outputs_dir.mkdir(parents=True)
    (outputs_dir / "outputs-shop-app-staging.json").write_text(json.dumps({"DistributionId": distribution_id}))

    out, _ = run("purge_cdn", "--wait")

    [created] = invalidations(distribution_id)
    assert f"Invalidation {created['Id']} created on {distribution_id} for 1 path(s)." in out
    assert f"Invalidation {created['Id']} completed." in out
    paths = boto3.client("cloudfront").get_invalidation(DistributionId=distribution_id, Id=created["Id"])
    assert paths["Invalidation"]["InvalidationBatch"]["Paths"]["Items"] == ["/api/products*"]


def test_purge_same_paths_twice_makes_two_invalidations(distribution_id):
    run("purge_cdn", "--distribution-id", distribution_id, "/api/products*", "/static/app.css")
    run("purge_cdn", "--distribution-id", distribution_id, "/api/products*", "/static/app.css")

    assert len(invalidations(distribution_id)) == 2


def test_purge_unknown_distribution_is_a_command_error(distribution_id):
    with pytest.raises(CommandError, match=r"^CloudFront has no distribution EDOESNOTEXIST\.$"):
        run("purge_cdn", "--distribution-id", "EDOESNOTEXIST")

    assert invalidations(distribution_id) == []


def test_purge_without_outputs_file_says_how_to_get_one(aws_env, outputs_dir):
    with pytest.raises(CommandError, match=r"No outputs file at .*outputs-shop-app-production\.json: deploy the app"):
        run("purge_cdn", "--env", "production")


def test_purge_refuses_a_path_without_leading_slash(distribution_id):
    with pytest.raises(CommandError, match="start with '/'"):
        run("purge_cdn", "--distribution-id", distribution_id, "api/products*")

    assert invalidations(distribution_id) == []


def test_purge_wait_gives_up_after_the_timeout(distribution_id, stub_client, clock):
    stubber = stub_client("cloudfront")
    batch = {"Paths": {"Quantity": 1, "Items": ["/api/products*"]}, "CallerReference": "x"}
    created = {"Id": "I1", "Status": "InProgress", "CreateTime": "2026-11-25T00:00:00Z", "InvalidationBatch": batch}
    stubber.add_response("create_invalidation", {"Location": "https://x", "Invalidation": created})
    for _ in range(3):
        stubber.add_response("get_invalidation", {"Invalidation": created})

    with pytest.raises(CommandError, match="still InProgress after 2 s"):
        run("purge_cdn", "--distribution-id", distribution_id, "--wait", "--timeout", "2")
