"""The workflow on a real SLURM cluster: Snakemake's SLURM executor against a one-node cluster.

tests/slurm/cluster.sh installs (if missing) and starts Debian's slurm-wlm + munge on localhost
under a temporary directory; the tiny end-to-end config of test_workflow.py (OLS only) runs with
`--executor slurm --workflow-profile workflow/profiles/slurm`, the jobs must have been seen by
SLURM (their ids, from Snakemake's log, listed COMPLETED by squeue), and every table must be
byte-identical to a local run of the same config. The cluster is stopped whatever happens.

Needs root (the daemons run as root; the install uses apt-get). Select it alone with
`python -m pytest -m slurm tests/test_slurm.py`, leave it out with `-m "not slurm"`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from test_workflow import REPO, SNAKEMAKE, make_dataset, run_snakemake, write_config

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

CLUSTER = REPO / "tests" / "slurm" / "cluster.sh"
# The tiny workflow: data steps, two OLS jobs, the comparison and the cross-target OLS tables.
TARGETS = [
    "results/compare/predictions.tsv",
    "results/compare/metrics.tsv",
    "results/compare/summary.tsv",
    "results/ols/all_coefficients.tsv",
    "results/ols/all_fits.tsv",
]
RULES = ["collect", "split", "normalize", "folds", "folds", "select_predictors", "select_predictors", "ols", "ols",
         "compare", "ols_summary"]
# the profile's groups: the data's set-up steps run in one sbatch job, each target's (folds, predictors) in one
PREPARE = {"collect", "split", "normalize"}
TARGET_SETUP = {"folds", "select_predictors"}
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+)")


def _cluster(action: str, directory: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(CLUSTER), action, str(directory)], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running one-node cluster; stopped (jobs cancelled, daemons by PID) on teardown, also on failure."""
    if os.name != "posix" or os.geteuid() != 0:
        pytest.skip("the one-node SLURM cluster needs root (daemons run as root, packages come from apt-get)")
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        pytest.skip("slurm-wlm is not installed and there is no apt-get to install it")
    # /tmp itself, not pytest's tmp_path: munge's socket path must stay short.
    directory = Path(tempfile.mkdtemp(prefix="gexpred-slurm-"))
    t0 = time.monotonic()
    try:
        started = _cluster("start", directory, timeout=600)
        start_s = time.monotonic() - t0
        if started.returncode != 0:
            pytest.fail(f"cluster.sh start failed ({started.returncode}):\n{started.stdout}\n{started.stderr}\n"
                        + _daemon_logs(directory))
        yield {"dir": directory, "conf": directory / "slurm.conf", "bin": directory / "bin", "start_s": start_s}
    finally:
        stopped = _cluster("stop", directory, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        shutil.rmtree(directory, ignore_errors=True)


def _daemon_logs(directory: Path) -> str:
    out = []
    for log in sorted((directory / "log").glob("*.log")):
        out.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-20:]))
    return "\n".join(out)


def _run_on_slurm(root: Path, cluster: dict, timeout: float = 480) -> tuple[str, float]:
    cmd = [*SNAKEMAKE, "--snakefile", str(REPO / "Snakefile"), "--directory", str(root),
           "--configfile", str(root / "config.yaml"),
           "--executor", "slurm", "--workflow-profile", str(REPO / "workflow" / "profiles" / "slurm"),
           # test-only overrides: the test cluster's partition, no accounting (squeue for status; the
           # plugin's first status check 3 s after a job ends instead of 40 s, 10 s more after each round in
           # which none finished: 7 jobs in ~70 s instead of ~100 s at 15 s), fail fast instead of retrying
           "--default-resources", "slurm_partition=debug",
           "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "3",
           "--seconds-between-status-checks", "2",
           "--retries", "0", "--jobs", "4", *TARGETS]
    # the jobs call the `gexpred` console script of this interpreter (sbatch exports PATH); the
    # cluster's bin/ holds an srun that finds the cluster's config (see cluster.sh)
    env = {**os.environ, "SLURM_CONF": str(cluster["conf"]),
           "PATH": os.pathsep.join([str(cluster["bin"]), str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # SIGTERM would mean "wait for running jobs": interrupt, then kill the process group
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
        raise AssertionError(f"snakemake on SLURM did not finish in {timeout} s:\n{out[-6000:]}")
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise AssertionError(f"snakemake on SLURM failed ({proc.returncode}):\n{out[-8000:]}")
    return out, wall


def _tables(root: Path) -> dict[str, bytes]:
    """Every TSV the run wrote, except timings (benchmarks)."""
    res = root / "results"
    return {str(p.relative_to(res)): p.read_bytes() for p in sorted(res.rglob("*.tsv"))
            if p.relative_to(res).parts[0] != "benchmarks"}


def test_tiny_workflow_on_slurm_equals_local_run(slurm_cluster, tmp_path):
    roots = {}
    for kind in ("slurm", "local"):
        root = tmp_path / kind
        make_dataset(root)
        write_config(root, models=["ols"])
        roots[kind] = root

    def local_run() -> float:
        t0 = time.monotonic()
        run_snakemake(roots["local"], "--nocolor", *TARGETS)  # a flag first: --configfile takes several values
        return time.monotonic() - t0

    # The local run goes on while the SLURM run mostly waits for its status polls.
    with ThreadPoolExecutor(max_workers=1) as pool:
        local = pool.submit(local_run)
        log, slurm_s = _run_on_slurm(roots["slurm"], slurm_cluster)
        local_s = local.result()

    # every job went through SLURM: one sbatch for the profile's group of the data's set-up steps, one for each
    # target's set-up, one per other rule job, and squeue knows each as COMPLETED (the test cluster keeps
    # finished jobs visible for MinJobAge = 600 s)
    ids = SUBMITTED.findall(log)
    assert len(ids) == len([r for r in RULES if r not in PREPARE | TARGET_SETUP]) + 1 + 2, log[-4000:]
    assert "slurm_logs/group_prepare_" in log and log.count("slurm_logs/group_target_setup_") >= 2, log[-4000:]
    for rule in RULES:
        assert len(re.findall(rf"^Finished jobid: \S+ \(Rule: {rule}\)$", log, re.M)) == RULES.count(rule), \
            f"rule {rule} was not run as often as planned:\n{log[-4000:]}"
    squeue = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(ids), "-o", "%i %T %M %S %e"], capture_output=True,
                            text=True, env={**os.environ, "SLURM_CONF": str(slurm_cluster["conf"])}, timeout=60)
    assert squeue.returncode == 0, squeue.stderr
    states = {line.split()[0]: line.split()[1] for line in squeue.stdout.splitlines()}
    assert states == {i: "COMPLETED" for i in ids}, squeue.stdout

    # the SLURM run's tables are byte-identical to the local run's
    slurm_tables, local_tables = _tables(roots["slurm"]), _tables(roots["local"])
    assert "compare/metrics.tsv" in slurm_tables and "ols/all_coefficients.tsv" in slurm_tables
    assert sorted(slurm_tables) == sorted(local_tables)
    differ = [name for name in slurm_tables if slurm_tables[name] != local_tables[name]]
    assert not differ, f"tables differ between the SLURM and the local run: {differ}"
    print(squeue.stdout)
    print(f"\nSLURM test timings: cluster start {slurm_cluster['start_s']:.1f} s, "
          f"{len(ids)} SLURM jobs in {slurm_s:.1f} s, local run {local_s:.1f} s")
