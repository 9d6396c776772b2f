"""Code bundles (kubemr.bundles): packing, the ConfigMap-or-S3 decision, unpacking, and
installing requirements from shipped wheels with the real pip, offline."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

import pytest
from kubemr import bundles
from kubemr import spec as specs

SHA = "ab" * 32


def job(module: str = "apps/wc.py:WordCount", output: str = "/out/wc") -> specs.MapReduceJob:
    return specs.parse_job(
        {
            "apiVersion": "kubemr.io/v1alpha1",
            "kind": "MapReduceJob",
            "metadata": {"name": "wc"},
            "spec": {
                "app": {"module": module},
                "input": {"paths": ["/data/*.txt"]},
                "output": {"path": output},
            },
        }
    )


def package(root: Path) -> Path:
    pkg = root / "shapes"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "freq.py").write_text("class Freq: ...\n")
    (pkg / "sub" / "data.txt").write_text("x\n")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "freq.cpython-311.pyc").write_bytes(b"\0")
    (pkg / ".git").mkdir()
    (pkg / ".git" / "HEAD").write_text("ref\n")
    return pkg


def wheel(directory: Path, name: str, version: str = "1.0") -> Path:
    """A real, minimal pure-Python wheel with one module ``<name>.py``."""
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        ).encode(),
        f"{dist_info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}\n"
        for path, data in files.items()
    )
    files[f"{dist_info}/RECORD"] = (record + f"{dist_info}/RECORD,,\n").encode()
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name_, data in files.items():
            archive.writestr(name_, data)
    return path


def test_a_single_file_and_a_package_are_packed_under_app(tmp_path: Path) -> None:
    single = tmp_path / "wc.py"
    single.write_text("class WordCount: ...\n")
    assert bundles.build(single, [], []).files == ("app/wc.py", "requirements.txt")
    files = bundles.build(package(tmp_path), [], ["inflection"]).files
    assert files == (
        "app/shapes/__init__.py",
        "app/shapes/freq.py",
        "app/shapes/sub/data.txt",
        "requirements.txt",
    ), "byte code and hidden folders are never shipped"


def test_the_digest_names_the_content_only(tmp_path: Path) -> None:
    app = tmp_path / "wc.py"
    app.write_text("class WordCount: ...\n")
    first = bundles.build(app, [], ["a==1"])
    app.touch()  # a new mtime changes nothing
    assert bundles.build(app, [], ["a==1"]).sha256 == first.sha256
    assert bundles.build(app, [], ["a==2"]).sha256 != first.sha256
    app.write_text("class WordCount: pass\n")
    assert bundles.build(app, [], ["a==1"]).sha256 != first.sha256
    assert first.sha256 == hashlib.sha256(first.data).hexdigest()


def test_what_cannot_be_an_app_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(bundles.BundleError, match=r"expected a \.py file"):
        bundles.build(tmp_path / "notes.txt", [], [])
    with pytest.raises(bundles.BundleError, match="no such file"):
        bundles.build(tmp_path / "missing", [], [])


def test_a_bundle_fits_a_config_map_up_to_the_limit_then_goes_to_s3_or_is_refused() -> None:
    limit = bundles.CONFIG_MAP_LIMIT
    assert limit < 1024 * 1024 * 3 // 4 + 1, "base64 of the bundle must stay under 1 MiB"
    assert bundles.placement(limit, "/out/wc") == "configMap"
    assert bundles.placement(limit + 1, "s3://bucket/out/wc") == "s3"
    with pytest.raises(bundles.BundleError) as refused:
        bundles.placement(limit + 1, "/out/wc")
    assert f"{limit + 1:,} bytes" in str(refused.value)
    assert f"({limit:,} bytes)" in str(refused.value)
    assert bundles.s3_url("s3://bucket/out/wc", SHA) == f"s3://bucket/.kubemr/bundles/{SHA}.zip"


def test_the_module_reference_names_the_shipped_file(tmp_path: Path) -> None:
    single = tmp_path / "wc.py"
    single.write_text("")
    assert bundles.module_reference("apps/wc.py:WordCount", single) == "wc.py:WordCount"
    assert bundles.module_reference("shapes.freq:Freq", tmp_path / "shapes") == "shapes.freq:Freq"
    pkg = package(tmp_path)
    nested = f"{pkg}/sub/tool.py:Tool"
    assert bundles.module_reference(nested, pkg) == "shapes/sub/tool.py:Tool"
    with pytest.raises(bundles.BundleError, match=r"ships 'wc\.py'"):
        bundles.module_reference("apps/other.py:X", single)


def test_the_job_points_at_its_bundle(tmp_path: Path) -> None:
    single = tmp_path / "wc.py"
    single.write_text("class WordCount: ...\n")
    bundle = bundles.build(single, [], [])
    placed = bundles.with_bundle(job(), bundle, single, "wc-app-0123456789")
    assert placed.spec.app.module == "wc.py:WordCount"
    assert placed.spec.app.bundle == specs.AppBundleSpec(
        config_map="wc-app-0123456789", sha256=bundle.sha256
    )
    url = f"s3://bucket/.kubemr/bundles/{bundle.sha256}.zip"
    in_s3 = bundles.with_bundle(job(output="s3://bucket/o"), bundle, single, url)
    assert in_s3.spec.app.bundle is not None and in_s3.spec.app.bundle.url == url


def test_the_spec_takes_one_bundle_source_and_plain_requirements() -> None:
    doc = specs.dump_job(job())
    doc["spec"]["app"]["bundle"] = {"configMap": "x", "url": "s3://b/k.zip", "sha256": SHA}
    with pytest.raises(specs.SpecError, match=r"exactly one of app\.bundle"):
        specs.parse_job(doc)
    doc["spec"]["app"]["bundle"] = {"configMap": "x", "sha256": "nothex"}
    with pytest.raises(specs.SpecError, match=r"spec\.app\.bundle\.sha256"):
        specs.parse_job(doc)
    doc["spec"]["app"].pop("bundle")
    doc["spec"]["app"]["requirements"] = ["--index-url=http://evil"]
    with pytest.raises(specs.SpecError, match=r"spec\.app\.requirements\[0\]"):
        specs.parse_job(doc)


def test_unpacking_verifies_and_keeps_to_the_layout(tmp_path: Path) -> None:
    bundle = bundles.build(package(tmp_path), [wheel(tmp_path, "tiny")], ["tiny"])
    bundles.verify(bundle.data, bundle.sha256, "cm")
    with pytest.raises(bundles.BundleError, match="the code changed"):
        bundles.verify(bundle.data + b"x", bundle.sha256, "cm")
    into = tmp_path / "into"
    assert bundles.unpack(bundle.data, into) == ["tiny"]
    assert (into / "app" / "shapes" / "freq.py").read_text() == "class Freq: ...\n"
    assert (into / "wheels" / "tiny-1.0-py3-none-any.whl").is_file()
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("app/../../escape.py", "x")
    with pytest.raises(bundles.BundleError, match="unexpected entry"):
        bundles.unpack(evil.getvalue(), tmp_path / "evil")
    assert not (tmp_path / "escape.py").exists()


def test_pip_installs_from_the_shipped_wheels_only(tmp_path: Path) -> None:
    command = bundles.install_command("python", tmp_path)
    assert {"--no-index", "--isolated", "--find-links", "--target"} <= set(command)
    bundle = bundles.build(None, [wheel(tmp_path, "tinyreq", "2.5")], ["tinyreq==2.5"])
    into = tmp_path / "into"
    bundles.install_requirements(into, bundles.unpack(bundle.data, into))
    assert (into / "site" / "tinyreq.py").read_text() == "VERSION = '2.5'\n"


def test_a_requirement_without_a_shipped_wheel_fails_with_pips_message(tmp_path: Path) -> None:
    bundle = bundles.build(None, [wheel(tmp_path, "tinyreq", "2.5")], ["tinyreq==3.0"])
    into = tmp_path / "into"
    with pytest.raises(bundles.BundleError) as failed:
        bundles.install_requirements(into, bundles.unpack(bundle.data, into))
    assert "No matching distribution found for tinyreq==3.0" in str(failed.value)
    assert "tinyreq" in failed.value.detail


def test_wheels_are_resolved_for_the_pods_python_and_platform(tmp_path: Path) -> None:
    target = bundles.Target(python_version="3.12", platforms=("manylinux_2_28_x86_64",))
    command = bundles.download_command("python", tmp_path / "r.txt", tmp_path, target)
    assert "--only-binary=:all:" in command
    assert command[command.index("--python-version") + 1] == "3.12"
    assert command[command.index("--platform") + 1] == "manylinux_2_28_x86_64"
    assert bundles.resolve_wheels([], tmp_path / "none", target) == []
