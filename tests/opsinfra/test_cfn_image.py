"""The image stack: its components carry the user data's own packages and files, and fit Image Builder's limits."""

import json
import re
import subprocess

from opsinfra.cfn import image, userdata
from tests.opsinfra.cfn_cache import resources, template

# AWS::ImageBuilder::Component Data: at most 16,000 characters (the resource schema's maxLength).
COMPONENT_DATA_LIMIT = 16_000


def _commands(document: str) -> dict[str, list[str]]:
    steps = json.loads(document)["phases"][0]["steps"]
    return {step["name"]: step["inputs"]["commands"] for step in steps}


def test_image_system_component_installs_the_user_datas_packages():
    packages = re.search(r"^packages=\((.*)\)$", userdata.read("user-data.sh"), re.MULTILINE).group(1).split()
    assert _commands(image.system_document())["packages"] == [f"dnf install -y {' '.join(packages)}"]


def test_image_system_component_writes_the_files_user_data_writes():
    user_data = userdata.read("user-data.sh")
    written = "\n".join(_commands(image.system_document())["scripts-and-units"])
    for name, (path, _) in image.IMAGE_FILES.items():
        assert f"\"$root{path}\" <<'SHOP_EOF'\n{{{{File:{name}}}}}" in user_data, name
        assert f"cat > {path} <<'SHOP_EOF'\n{userdata.read(name).rstrip()}\nSHOP_EOF" in written, name


def test_image_component_commands_are_bash(tmp_path):
    for document in (image.system_document(), image.release_document()):
        for name, commands in _commands(document).items():
            script = tmp_path / f"{name}.sh"
            script.write_text("\n".join(commands) + "\n")
            done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
            assert done.returncode == 0, (name, done.stderr)


def test_image_components_fit_and_are_versioned_by_content():
    body = template("image")
    components = resources(body, "AWS::ImageBuilder::Component")
    assert set(components) == {"ImageSystemComponent", "ImageReleaseComponent"}
    for component in components.values():
        data = component["Properties"]["Data"]
        assert len(data) < COMPONENT_DATA_LIMIT
        assert component["Properties"]["Version"] == image.component_version(data)
    assert image.component_version("a") != image.component_version("b")
    assert re.fullmatch(r"1\.0\.\d+", image.component_version("a"))


def test_image_release_component_takes_version_and_bundle():
    document = json.loads(image.release_document())
    assert [next(iter(item)) for item in document["parameters"]] == ["Version", "Bundle"]
    (command, check) = _commands(image.release_document())["release"]
    assert command.endswith("/usr/local/sbin/shop-release install '{{ Version }}' '{{ Bundle }}'")
    assert check == "test -f '/opt/shop/releases/{{ Version }}/.installed'"


def test_image_builder_terminates_a_failed_build_and_requires_imdsv2():
    infrastructure = resources(template("image"), "AWS::ImageBuilder::InfrastructureConfiguration")
    properties = infrastructure["ImageInfrastructure"]["Properties"]
    assert properties["TerminateInstanceOnFailure"] is True
    assert properties["InstanceMetadataOptions"]["HttpTokens"] == "required"


def test_app_launch_templates_resolve_the_image_parameter_at_launch():
    body = template("app")
    assert (
        body["Parameters"]["AmiParameter"]["Default"]
        == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    )
    for launch in resources(body, "AWS::EC2::LaunchTemplate").values():
        assert launch["Properties"]["LaunchTemplateData"]["ImageId"] == {
            "Fn::Sub": ["resolve:ssm:${Name}", {"Name": {"Ref": "AmiParameter"}}]
        }


def test_image_does_not_enable_the_release_unit_before_user_data_configures_it():
    # An enabled unit would run at the image's first boot, before the user data writes /etc/shop/*.env.
    commands = [command for commands in _commands(image.system_document()).values() for command in commands]
    assert not [command for command in commands if "systemctl enable" in command]
    assert "systemctl enable shop-release.service" in userdata.read("user-data.sh")
