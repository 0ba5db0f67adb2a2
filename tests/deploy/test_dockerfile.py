"""The Dockerfile and .dockerignore, checked without a Docker engine.

Two linters from the npm registry, installed on first use into .cache/node (git-ignored):
``dockerfile-utils lint`` (the parser and validator behind VS Code's Dockerfile support:
syntax, flags, instruction forms) and ``dockerfilelint`` (best-practice rules: tags, apt, sudo,
...). Both must report nothing. Each is also shown a known-bad file, so a linter that silently
passes everything fails here. Then plain-Python checks of what the image must be (README,
deploy/): multi-stage on one base (a build argument whose default is pinned by tag), the Rust
toolchain in the builder only, a numeric non-root USER in the final stage, exec-form commands,
the environment and ports. Building and running the image is tests/container's. Without npm
the linter tests skip with one line (CI turns that into a failure).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.manifests import REPO, base_daemonset, container_settings, proxy_containers

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
NODE_PREFIX = REPO / ".cache" / "node"
LINTERS = {"dockerfile-utils": "0.16.3", "dockerfilelint": "1.8.0"}
"""npm package → pinned version; each installs a command of the same name."""
NPM_TIMEOUT = 300.0
"""Seconds `npm install` of both linters may take (a few MB from the registry)."""
LINT_TIMEOUT = 60.0
"""Seconds one linter run may take (node start-up included)."""
EXEC_FORM = re.compile(r"^(?:--\S+\s+)*(\[.*\])$", re.DOTALL)
"""A RUN/CMD/ENTRYPOINT argument in exec (JSON) form, after any --flags (RUN --mount=...)."""

Instruction = tuple[str, str]
DAEMONSET = base_daemonset()


# --- linters ---------------------------------------------------------------------------------


def installed_version(package: str) -> str | None:
    manifest = NODE_PREFIX / "node_modules" / package / "package.json"
    if not manifest.is_file():
        return None
    version: str = json.loads(manifest.read_text(encoding="utf-8"))["version"]
    return version


@pytest.fixture(scope="module")
def linters() -> dict[str, Path]:
    """The two linters' commands, installed into .cache/node at their pinned versions."""
    if any(installed_version(p) != v for p, v in LINTERS.items()):
        wanted = [f"{p}@{v}" for p, v in LINTERS.items()]
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm not found: cannot install the Dockerfile linters")
        done = subprocess.run(
            # Both at once, saved to .cache/node/package.json: npm prunes what that file lacks.
            [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund",
             "--save-exact", *wanted],
            capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False)
        assert done.returncode == 0, f"npm install {' '.join(wanted)} failed:\n{done.stderr}"
    return {p: NODE_PREFIX / "node_modules" / ".bin" / p for p in LINTERS}


def run_linter(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=LINT_TIMEOUT,
                          check=False, cwd=REPO)


def dockerfile_utils_problems(linters: dict[str, Path], path: Path) -> list[dict[str, object]]:
    done = run_linter([str(linters["dockerfile-utils"]), "lint", "--json", str(path)])
    problems: list[dict[str, object]] = json.loads(done.stdout)
    assert done.returncode in (0, 1), done.stderr  # 1: some problem is an error
    return problems


def dockerfilelint_problems(linters: dict[str, Path], path: Path) -> list[dict[str, object]]:
    done = run_linter([str(linters["dockerfilelint"]), "--output", "json", str(path)])
    report = json.loads(done.stdout)
    problems: list[dict[str, object]] = [i for f in report["files"] for i in f["issues"]]
    return problems


def test_dockerfile_utils_finds_no_problem(linters: dict[str, Path]) -> None:
    assert dockerfile_utils_problems(linters, DOCKERFILE) == []


def test_dockerfilelint_finds_no_problem(linters: dict[str, Path]) -> None:
    assert dockerfilelint_problems(linters, DOCKERFILE) == []


BAD_DOCKERFILE = """\
from python
ENTRYPOINT ["a"]
ENTRYPOINT ["b"]
RUN apt-get update
"""
"""Lower-case FROM, no tag, two ENTRYPOINTs, apt-get update alone: each linter flags some."""


def test_both_linters_flag_a_bad_dockerfile(linters: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text(BAD_DOCKERFILE, encoding="utf-8")

    assert dockerfile_utils_problems(linters, bad)
    assert dockerfilelint_problems(linters, bad)


# --- the Dockerfile's text ---------------------------------------------------------------------


def read_instructions(text: str) -> list[Instruction]:
    """(INSTRUCTION, arguments) pairs: comments and the syntax directive dropped, backslash
    continuations joined."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The instructions of each build stage, each list starting with its FROM (the global ARGs
    before the first FROM are `global_args`)."""
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            result.append([])
        if not result:
            assert instruction[0] == "ARG", f"{instruction[0]} before the first FROM"
            continue
        result[-1].append(instruction)
    return result


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """NAME → default of each ARG before the first FROM (the only ones a FROM may use)."""
    values = {}
    for keyword, args in instructions:
        if keyword == "FROM":
            break
        name, _, default = args.partition("=")
        values[name] = default
    return values


INSTRUCTIONS = read_instructions(DOCKERFILE.read_text(encoding="utf-8"))
STAGES = stages(INSTRUCTIONS)
BUILDER = STAGES[0]
FINAL = STAGES[-1]
BUILDER_VENV_PYTHON = "/opt/build/bin/python"
"""The builder's venv, whose pip both stages run (the final stage through a bind mount)."""
BASE_PYTHON = "/usr/local/bin/python3"
"""The base interpreter: the official image's, and where scripts/build-image.sh links Debian's
python3 in a local base."""
RUST_TOOLS = ("cargo", "rustc", "gcc", "build-essential")


def arguments(stage: list[Instruction], keyword: str) -> list[str]:
    return [args for kw, args in stage if kw == keyword]


def env_values(stage: list[Instruction]) -> dict[str, str]:
    values = {}
    for args in arguments(stage, "ENV"):
        for key, value in re.findall(r'(\w+)=("[^"]*"|\S+)', args):
            values[key] = value.strip('"')
    return values


def test_the_build_has_a_builder_stage_and_a_final_stage() -> None:
    assert len(STAGES) >= 2
    assert re.search(r"\bAS\s+builder$", STAGES[0][0][1], re.IGNORECASE)
    builder_runs = " ".join(arguments(STAGES[0], "RUN"))
    assert '"wheel"' in builder_runs, "the builder stage builds wheels"


def test_the_final_stage_installs_only_the_builders_wheels_and_keeps_no_build_tools() -> None:
    runs = arguments(FINAL, "RUN")
    install = [r for r in runs if '"install"' in r]

    assert len(install) == 1 and "from=builder" in install[0] and '"--no-index"' in install[0]
    # Wheels come through a bind mount, not a layer; the one COPY is their list of hashes,
    # which keys the install's layer cache on the wheels themselves.
    hashes = "--from=builder /wheels.sha256 /opt/gproxy-mp/wheels.sha256"
    assert arguments(FINAL, "COPY") == [hashes]
    assert any('"uninstall"' in r and '"setuptools"' in r and '"wheel"' in r for r in runs)
    assert not any(tool in " ".join(runs) for tool in ("apt-get", *RUST_TOOLS))


def test_the_builder_has_debians_rust_toolchain_for_the_native_extension() -> None:
    """maturin (the build backend pip fetches) runs cargo; Debian's cargo brings rustc and the
    C linker rustc calls."""
    installs = [json.loads(m.group(1)) for args in arguments(BUILDER, "RUN")
                if (m := EXEC_FORM.match(args)) and "install" in args]

    assert any(c[:2] == ["apt-get", "install"] and "cargo" in c for c in installs), installs


def test_the_final_stage_runs_pip_from_the_builders_venv_by_full_path() -> None:
    """ENV PATH puts the venv (which has no pip) first, and a Debian base's python3 has no pip
    at all: the builder's venv, mounted at the path it was made at, brings pip, and is named in
    full."""
    runs = arguments(FINAL, "RUN")
    commands = [(args, json.loads(m.group(1))) for args in runs if (m := EXEC_FORM.match(args))]

    assert env_values(FINAL)["PATH"].startswith("/opt/gproxy-mp/bin:")
    assert len(commands) == len(runs)
    for args, command in commands:
        if "pip" in command:
            assert command[0] == BUILDER_VENV_PYTHON, command
            assert "from=builder,source=/opt/build,target=/opt/build" in args, args
        elif "-m" in command:
            assert command[0] == BASE_PYTHON, command


def test_both_stages_build_on_one_base_whose_default_is_pinned_to_a_tag() -> None:
    """The base is the build arguments BASE_IMAGE and BASE_TAG (scripts/build-image.sh passes a
    local Debian base where the official one cannot be pulled); their defaults name the official
    image."""
    images = [args.split()[0] for args in arguments(INSTRUCTIONS, "FROM")]
    defaults = global_args(INSTRUCTIONS)
    tag = defaults.get("BASE_TAG", "").split("@")[0]

    assert set(images) == {"${BASE_IMAGE}:${BASE_TAG}"}, images
    assert defaults.get("BASE_IMAGE") == "python"
    assert re.fullmatch(r"3\.11\.\d+-slim-[a-z]+", tag), f"BASE_TAG={tag}: slim Python 3.11, pinned"


def test_the_final_stage_runs_as_a_numeric_non_root_user() -> None:
    users = arguments(FINAL, "USER")
    assert users, "no USER in the final stage: the image would run as root"
    user = users[-1]

    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER {user}: runAsNonRoot needs a numeric uid"
    assert int(user.split(":")[0]) != 0
    pod_uid = DAEMONSET["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert int(user.split(":")[0]) == pod_uid, f"deploy/base's DaemonSet runs uid {pod_uid}"


@pytest.mark.parametrize("keyword", ["RUN", "CMD", "ENTRYPOINT"])
def test_commands_are_in_exec_form(keyword: str) -> None:
    for args in arguments(INSTRUCTIONS, keyword):
        match = EXEC_FORM.match(args)
        assert match, f"{keyword} {args}: shell form"
        assert isinstance(json.loads(match.group(1)), list)


def test_the_entrypoint_is_gproxy_mp() -> None:
    (entrypoint,) = arguments(FINAL, "ENTRYPOINT")

    assert json.loads(entrypoint) == ["gproxy-mp"]


def test_the_environment_is_unbuffered_and_writes_no_bytecode() -> None:
    env = env_values(FINAL)

    assert env.get("PYTHONUNBUFFERED") == "1"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"


def test_expose_documents_the_listen_and_admin_ports_deploy_uses() -> None:
    exposed = {int(p.split("/")[0]) for args in arguments(FINAL, "EXPOSE") for p in args.split()}
    (container,) = proxy_containers(DAEMONSET)
    settings = container_settings(container)
    assert settings.admin is not None

    assert {settings.routes[0].listen.port, settings.admin.port} <= exposed


# --- .dockerignore -----------------------------------------------------------------------------


def ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(is_exception, regex) per .dockerignore line, in order (Docker's pattern syntax:
    `*` and `?` within one path element, `**` across elements, `!` re-includes)."""
    patterns = []
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + pattern[i : end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        patterns.append((exception, re.compile(regex)))
    return patterns


def in_build_context(path: str) -> bool:
    """Whether Docker sends `path` (relative to the repo): the last pattern that matches the
    path or one of its parent directories decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for exception, regex in ignore_patterns():
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            included = exception
    return included


LEFT_OUT = [
    ".git/HEAD", ".venv/bin/python", ".cache/node/node_modules/x/package.json",
    ".pytest_cache/v/cache/nodeids", ".mypy_cache/3.11/x.json", ".ruff_cache/CACHEDIR.TAG",
    "gproxy_mp.egg-info/PKG-INFO", "tests/unit/test_model.py", "testbin/k8s/go.mod",
    "gproxy_mp/__pycache__/cli.cpython-311.pyc", "gproxy_mp/bus/__pycache__/x.pyc",
    "deploy/base/daemonset.yaml", "Dockerfile", "kubeconfig",
    "native/target/release/libgproxy.so", "target/debug/build/x", "gproxy_mp/_native.abi3.so",
]


@pytest.mark.parametrize("path", LEFT_OUT)
def test_dockerignore_leaves_out_caches_tests_and_tooling(path: str) -> None:
    assert not in_build_context(path)


def test_dockerignore_sends_everything_the_build_copies() -> None:
    sources = [(REPO / "pyproject.toml"), (REPO / "README.md"),
               *sorted((REPO / "gproxy_mp").rglob("*.py"))]

    for source in sources:
        assert in_build_context(str(source.relative_to(REPO))), source
    copied = [args.split()[:-1] for args in arguments(BUILDER, "COPY")]
    for names in copied:
        for name in names:
            if name != ".":  # the whole context: the sources above
                assert in_build_context(name.rstrip("/")), f"COPY {name}: left out of the context"


@pytest.mark.parametrize("path", ["native/Cargo.toml", "native/src/lib.rs", "Cargo.lock"])
def test_dockerignore_sends_the_rust_sources_of_the_native_extension(path: str) -> None:
    assert in_build_context(path)
