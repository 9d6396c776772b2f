"""The operator's pure core: spec -> manifests (kubemr_operator.manifests)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubemr import spec as specs
from kubemr_operator import manifests
from kubemr_operator.manifests import JobRef
from kubemr_operator.settings import Settings, from_env

REF = JobRef("wc", "batch", "uid-1")
SETTINGS = Settings(image="registry.example/kubemr:1")


def job(**spec: Any) -> specs.MapReduceJob:
    body = {
        "app": {"builtin": "wordcount"},
        "input": {"paths": ["/data/*.txt"]},
        "output": {"path": "/out/wc"},
        **spec,
    }
    return specs.parse_job(
        {
            "apiVersion": "kubemr.io/v1alpha1",
            "kind": "MapReduceJob",
            "metadata": {"name": "wc"},
            "spec": body,
        }
    )


def env_of(pod: dict[str, Any]) -> dict[str, Any]:
    return {
        e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]
    }


def test_names_are_deterministic_per_slot_and_attempt() -> None:
    assert manifests.pod_name("wc", "master", 0, 0) == "wc-master"
    assert manifests.pod_name("wc", "master", 0, 2) == "wc-master-2"
    assert manifests.pod_name("wc", "mapper", 3, 0) == "wc-mapper-3"
    assert manifests.pod_name("wc", "reducer", 0, 1) == "wc-reducer-0-1"


def test_every_object_is_owned_and_labelled() -> None:
    model = job()
    objects = [
        manifests.config_map(REF, model, SETTINGS),
        manifests.secret(REF, "t0k3n", SETTINGS),
        manifests.service(REF, SETTINGS),
        manifests.network_policy(REF, SETTINGS),
        manifests.pod(REF, model, "master", 0, 0, SETTINGS),
        manifests.pod(REF, model, "mapper", 1, 2, SETTINGS),
    ]
    for obj in objects:
        owner = obj["metadata"]["ownerReferences"][0]
        assert owner == {
            "apiVersion": "kubemr.io/v1alpha1",
            "kind": "MapReduceJob",
            "name": "wc",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert obj["metadata"]["labels"][manifests.LABEL_JOB] == "wc"
        assert obj["metadata"]["namespace"] == "batch"
    mapper = objects[-1]["metadata"]["labels"]
    assert (mapper[manifests.LABEL_ROLE], mapper[manifests.LABEL_INDEX]) == ("mapper", "1")
    assert mapper[manifests.LABEL_ATTEMPT] == "2"


def test_only_the_jobs_pods_reach_its_grpc_ports() -> None:
    policy = manifests.network_policy(REF, SETTINGS)
    assert (policy["apiVersion"], policy["kind"]) == ("networking.k8s.io/v1", "NetworkPolicy")
    assert policy["metadata"]["name"] == "wc-network"
    spec = policy["spec"]
    job_pods = {"matchLabels": {manifests.LABEL_JOB: "wc"}}
    assert spec["podSelector"] == job_pods
    assert spec["policyTypes"] == ["Ingress"]
    grpc_rule, monitoring_rule = spec["ingress"]
    assert grpc_rule["from"] == [{"podSelector": job_pods}]  # same namespace, same job
    assert grpc_rule["ports"] == [
        {"protocol": "TCP", "port": 7070},
        {"protocol": "TCP", "port": 7071},
    ]
    assert "from" not in monitoring_rule  # Prometheus and the operator, from anywhere
    assert monitoring_rule["ports"] == [{"protocol": "TCP", "port": 9090}]
    # The ports the policy opens are the ones the pods serve on.
    model = job()
    served = {
        port["containerPort"]
        for role, index in (("master", 0), ("mapper", 0))
        for port in manifests.pod(REF, model, role, index, 0, SETTINGS)["spec"]["containers"][0][
            "ports"
        ]
    }
    assert served == {7070, 7071, 9090}


def test_the_master_reads_the_validated_manifest_from_its_config_map() -> None:
    model = job(reduceTasks=3)
    data = manifests.config_map(REF, model, SETTINGS)["data"][manifests.JOB_FILE]
    assert specs.parse_job(__import__("json").loads(data)) == model
    master = manifests.master_pod(REF, model, 0, SETTINGS)
    env = env_of(master)
    assert env["KUBEMR_JOB_FILE"] == "/etc/kubemr/job.json"
    assert env["KUBEMR_MONITORING_PORT"] == "9090"
    assert master["spec"]["containers"][0]["args"] == ["master"]
    assert {"name": "kubemr-job", "configMap": {"name": "wc-spec"}} in master["spec"]["volumes"]


def test_workers_find_the_master_through_the_headless_service() -> None:
    service = manifests.service(REF, SETTINGS)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True  # found before the probe passes
    assert service["spec"]["selector"] == {"kubemr.io/job": "wc", "kubemr.io/role": "master"}
    mapper = manifests.worker_pod(REF, job(), "mapper", 0, 0, SETTINGS)
    env = env_of(mapper)
    assert env["KUBEMR_MASTER"] == "wc-master.batch.svc:7070"
    assert env["KUBEMR_ROLE"] == "mapper"
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["KUBEMR_TOKEN"] == {"secretKeyRef": {"name": "wc-token", "key": "token"}}
    assert mapper["spec"]["containers"][0]["ports"] == [
        {"name": "shuffle", "containerPort": 7071},
        {"name": "monitoring", "containerPort": 9090},
    ]
    reducer = manifests.worker_pod(REF, job(), "reducer", 0, 0, SETTINGS)
    assert reducer["spec"]["containers"][0]["ports"] == [
        {"name": "monitoring", "containerPort": 9090}
    ]


def test_every_pod_serves_metrics_and_is_annotated_for_scraping() -> None:
    settings = Settings(image="registry.example/kubemr:1", monitoring_port=9191)
    for role, index in (("master", 0), ("mapper", 1), ("reducer", 0)):
        pod = manifests.pod(REF, job(), role, index, 0, settings)
        container = pod["spec"]["containers"][0]
        assert {"name": "monitoring", "containerPort": 9191} in container["ports"], role
        assert env_of(pod)["KUBEMR_MONITORING_PORT"] == "9191", role
        assert pod["metadata"]["annotations"] == {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "9191",
            "prometheus.io/path": "/metrics",
        }, role


def test_pods_are_restricted() -> None:
    pod = manifests.pod(REF, job(), "reducer", 0, 0, SETTINGS)
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["spec"]["automountServiceAccountToken"] is False
    container = pod["spec"]["containers"][0]["securityContext"]
    assert container == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert pod["spec"]["restartPolicy"] == "Never"
    mounts = {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert "/tmp" not in mounts  # never hide a host path under /tmp (local cluster)
    env = env_of(pod)
    assert env["TMPDIR"] in mounts  # the writable scratch the read-only root lacks


def test_the_spec_reaches_every_pod() -> None:
    model = job(
        image="mine:2",
        mapper={"replicas": 2, "resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": 1}}},
        master={"resources": {"requests": {"memory": "256Mi"}}},
        serviceAccountName="runner",
        nodeSelector={"pool": "batch"},
        tolerations=[{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "books"}}],
        volumeMounts=[{"name": "data", "mountPath": "/data", "readOnly": True}],
    )
    for role in ("master", "mapper", "reducer"):
        pod = manifests.pod(REF, model, role, 0, 0, SETTINGS)
        spec = pod["spec"]
        container = spec["containers"][0]
        assert container["image"] == "mine:2"
        assert spec["serviceAccountName"] == "runner"
        assert spec["nodeSelector"] == {"pool": "batch"}
        assert spec["tolerations"] == [
            {"key": "batch", "operator": "Exists", "effect": "NoSchedule"}
        ]
        assert {"name": "data", "persistentVolumeClaim": {"claimName": "books"}} in spec["volumes"]
        assert {"name": "data", "mountPath": "/data", "readOnly": True} in container["volumeMounts"]
    mapper = manifests.pod(REF, model, "mapper", 0, 0, SETTINGS)["spec"]["containers"][0]
    assert mapper["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}
    master = manifests.pod(REF, model, "master", 0, 0, SETTINGS)["spec"]["containers"][0]
    assert master["resources"] == {"requests": {"memory": "256Mi"}}


def test_s3_credentials_come_from_the_named_secret_by_reference() -> None:
    model = job(
        input={"paths": ["s3://books/in/"]},
        output={"path": "s3://books/out/wc"},
        storage={"endpoint": "http://minio.storage:9000", "credentialsSecret": "minio-creds"},
    )
    for role in ("master", "mapper", "reducer"):
        pod = manifests.pod(REF, model, role, 0, 0, SETTINGS)
        env = env_of(pod)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert env[key] == {"secretKeyRef": {"name": "minio-creds", "key": key}}
        assert env["AWS_SESSION_TOKEN"] == {
            "secretKeyRef": {"name": "minio-creds", "key": "AWS_SESSION_TOKEN", "optional": True}
        }
        # no secret value in any plain field of the pod; the endpoint travels in the spec
        assert all(
            "value" not in e or not e["name"].startswith("AWS_")
            for e in pod["spec"]["containers"][0]["env"]
        )
    config = manifests.config_map(REF, model, SETTINGS)["data"][manifests.JOB_FILE]
    assert '"endpoint": "http://minio.storage:9000"' in config


def test_irsa_needs_only_the_service_account() -> None:
    model = job(output={"path": "s3://books/out/wc"}, serviceAccountName="kubemr-s3")
    for role in ("master", "mapper", "reducer"):
        pod = manifests.pod(REF, model, role, 0, 0, SETTINGS)
        assert pod["spec"]["serviceAccountName"] == "kubemr-s3"
        assert not [name for name in env_of(pod) if name.startswith("AWS_")]


def test_the_operators_image_is_the_default() -> None:
    pod = manifests.pod(REF, job(), "mapper", 0, 0, SETTINGS)
    assert pod["spec"]["containers"][0]["image"] == "registry.example/kubemr:1"
    assert "workingDir" not in pod["spec"]["containers"][0]
    local = Settings(pod_working_dir="/src/kubemr")
    assert (
        manifests.pod(REF, job(), "mapper", 0, 0, local)["spec"]["containers"][0]["workingDir"]
        == "/src/kubemr"
    )


def test_the_operators_volumes_reach_every_pod_unless_the_job_overrides_them() -> None:
    data = {"name": "data", "persistentVolumeClaim": {"claimName": "jobs-data"}}
    settings = from_env(
        {
            "KUBEMR_OPERATOR_POD_VOLUMES": json.dumps([data, {"name": "ref", "emptyDir": {}}]),
            "KUBEMR_OPERATOR_POD_VOLUME_MOUNTS": json.dumps(
                [{"name": "data", "mountPath": "/data"}, {"name": "ref", "mountPath": "/ref"}]
            ),
        }
    )
    for role in ("master", "mapper", "reducer"):
        pod = manifests.pod(REF, job(), role, 0, 0, settings)
        assert data in pod["spec"]["volumes"]
        mounts = pod["spec"]["containers"][0]["volumeMounts"]
        assert {"name": "data", "mountPath": "/data", "readOnly": False} in mounts
    own = job(
        volumes=[{"name": "data", "hostPath": {"path": "/mine"}}, {"name": "x", "emptyDir": {}}],
        volumeMounts=[{"name": "data", "mountPath": "/in"}, {"name": "x", "mountPath": "/ref"}],
    )
    pod = manifests.pod(REF, own, "mapper", 0, 0, settings)
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "hostPath": {"path": "/mine"}}
    paths = [m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]]
    assert "/data" not in paths and paths.count("/ref") == 1 and "/in" in paths


def test_the_operators_volumes_are_checked_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="KUBEMR_OPERATOR_POD_VOLUMES"):
        from_env({"KUBEMR_OPERATOR_POD_VOLUMES": "[{}]"})
    with pytest.raises(ValueError, match=r"POD_VOLUME_MOUNTS names volumes not in .*\['gone'\]"):
        from_env({"KUBEMR_OPERATOR_POD_VOLUME_MOUNTS": '[{"name": "gone", "mountPath": "/g"}]'})


def test_settings_from_the_environment() -> None:
    settings = from_env(
        {
            "KUBEMR_OPERATOR_IMAGE": "x:1",
            "KUBEMR_OPERATOR_NAMESPACES": "a, b",
            "KUBEMR_OPERATOR_RECONCILE_INTERVAL": "0.5",
            "KUBEMR_OPERATOR_CREATE_CONCURRENCY": "8",
            "KUBEMR_OPERATOR_STANDALONE": "true",
        }
    )
    assert settings.image == "x:1"
    assert settings.namespaces == ("a", "b")
    assert settings.reconcile_interval == 0.5
    assert settings.create_concurrency == 8
    assert settings.standalone
    assert from_env({}) == Settings()
    with pytest.raises(ValueError, match="KUBEMR_OPERATOR_CREATE_CONCURRENCY"):
        from_env({"KUBEMR_OPERATOR_CREATE_CONCURRENCY": "0"})


def test_job_pods_write_volumes_they_do_not_own_through_fs_group() -> None:
    """UID 65532 writes a PVC or hostPath owned by root: the kubelet gives the volume to
    fsGroup, walking it only when its root does not carry the group yet."""
    pod = manifests.worker_pod(REF, job(), "reducer", 0, 0, SETTINGS)
    context = pod["spec"]["securityContext"]
    assert context["fsGroup"] == context["runAsUser"] == 65532
    assert context["fsGroupChangePolicy"] == "OnRootMismatch"


def test_relative_paths_are_refused_unless_job_pods_have_a_working_directory() -> None:
    relative = job(input={"paths": ["/data/a.txt", "books/*.txt"]}, output={"path": "out/wc"})
    problems = manifests.path_problems(relative.spec, SETTINGS)
    assert [p.split(":")[0] for p in problems] == ["spec.input.paths[1]", "spec.output.path"]
    assert "'books/*.txt' is a relative path" in problems[0]
    assert "read-only root filesystem" in problems[0]
    assert manifests.path_problems(job().spec, SETTINGS) == ()
    s3 = job(input={"paths": ["s3://bucket/in/"]}, output={"path": "s3://bucket/out"})
    assert manifests.path_problems(s3.spec, SETTINGS) == ()
    rooted = Settings(image="registry.example/kubemr:1", pod_working_dir="/srv/kubemr")
    assert manifests.path_problems(relative.spec, rooted) == ()


def test_a_job_with_a_code_bundle_installs_it_in_an_init_container() -> None:
    sha = "cd" * 32
    model = job(
        app={"module": "wc.py:WordCount", "bundle": {"configMap": "wc-app-x", "sha256": sha}}
    )
    for role in ("master", "mapper"):
        pod = manifests.pod(REF, model, role, 0, 0, SETTINGS)
        (init,) = pod["spec"]["initContainers"]
        container = pod["spec"]["containers"][0]
        assert init["name"] == manifests.INSTALL_CONTAINER
        assert init["args"][:1] == ["install-app"]
        assert init["args"][init["args"].index("--into") + 1] == SETTINGS.app_dir
        assert init["args"][init["args"].index("--bundle-dir") + 1] == SETTINGS.bundle_dir
        assert init["securityContext"] == container["securityContext"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert init["terminationMessagePolicy"] == "FallbackToLogsOnError"
        mounts = {m["mountPath"]: m for m in init["volumeMounts"]}
        assert mounts[SETTINGS.app_dir].get("readOnly") is None, "the init container writes"
        assert mounts[SETTINGS.bundle_dir]["readOnly"] is True
        runtime_mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert runtime_mounts[SETTINGS.app_dir]["readOnly"] is True
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes[manifests.APP_VOLUME] == {"name": manifests.APP_VOLUME, "emptyDir": {}}
        assert volumes[manifests.BUNDLE_VOLUME]["configMap"] == {"name": "wc-app-x"}
        assert volumes[manifests.JOB_VOLUME]["configMap"] == {"name": "wc-spec"}
        assert env_of(pod)["PYTHONPATH"] == f"{SETTINGS.app_dir}/app:{SETTINGS.app_dir}/site"
        assert container["args"][-2:] == ["--search", f"{SETTINGS.app_dir}/app"]


def test_a_bundle_in_s3_is_read_with_the_jobs_credentials() -> None:
    model = job(
        app={"builtin": "wordcount", "bundle": {"url": "s3://b/k.zip", "sha256": "cd" * 32}},
        storage={"credentialsSecret": "s3-creds"},
    )
    pod = manifests.pod(REF, model, "reducer", 0, 0, SETTINGS)
    (init,) = pod["spec"]["initContainers"]
    assert "--bundle-dir" not in init["args"]
    assert manifests.BUNDLE_VOLUME not in {v["name"] for v in pod["spec"]["volumes"]}
    assert "AWS_ACCESS_KEY_ID" in {e["name"] for e in init["env"]}


def test_a_job_without_a_bundle_has_no_init_container() -> None:
    pod = manifests.pod(REF, job(), "mapper", 0, 0, SETTINGS)
    assert "initContainers" not in pod["spec"]
    assert "PYTHONPATH" not in env_of(pod)
