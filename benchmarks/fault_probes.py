"""Fault / bad-input probe sweep of the ``xorsnn`` CLI (issue 15's bar).

Runs ~90 quick probes -- bad numeric options, unknown models/options, corrupt / truncated / non-finite
checkpoints, an out-dir that is a file, resume with changed settings, two runs in one out-dir,
mislabelled image folders, float64 input, ... -- each as a subprocess with a timeout, and classifies
each outcome:

* ``ok-refused``: exit 2 and exactly one non-empty stderr line naming the problem, no traceback;
* ``ok-ran``: a probe that should succeed did (exit 0, output checked where there is a number to check);
* ``traceback``: a Python traceback reached the user;
* ``silent``: exit 0 where it should have refused, or a wrong number printed;
* ``multi-line``: refused, but with more than one stderr line (or none);
* ``unclear``: refused in one line that does not name the problem (or exit code other than 0/2);
* ``timeout``.

Tiny settings only (``xoresnet8`` widths 4/8/8, digits, 128 training images, 1 epoch, T=2, 1 thread)::

    OMP_NUM_THREADS=1 XORSNN_DATA=/work/data python benchmarks/fault_probes.py

writes ``benchmarks/results/fault_probes.md``. Every probe runs with ``-q`` (results-only logging), so
stderr holds only warnings and errors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
TINY = [
    "--model",
    "xoresnet8",
    "--dataset",
    "digits",
    "--train-subset",
    "128",
    "--test-subset",
    "64",
    "--epochs",
    "1",
    "--T",
    "2",
    "--batch-size",
    "32",
    "--no-progress",
    "--model-arg",
    "widths=[4, 8, 8]",
]


@dataclass
class Probe:
    name: str
    argv: list[str]
    expect: str = "refuse"  # "refuse" | "ok"
    match: str | None = None  # regex the refusal line must contain (case-insensitive)
    check: Callable[[str, str], str | None] | None = None  # (stdout, stderr) -> problem or None (for "ok")
    timeout: float = 90.0
    setup: Callable[[], None] | None = None
    raw: bool = False  # argv is a full command (python -c ...), not xorsnn arguments
    result: dict = field(default_factory=dict)


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["OMP_NUM_THREADS"] = "1"
    e["MKL_NUM_THREADS"] = "1"
    e["NUMBA_NUM_THREADS"] = "1"
    e.setdefault("XORSNN_DATA", "/work/data")
    e.pop("XORSNN_DEBUG", None)
    return e


def run_cmd(cmd: list[str], timeout: float) -> tuple[int | None, str, str, float]:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env(), cwd=ROOT)
        return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return None, out, err, time.perf_counter() - t0


def xorsnn_cmd(argv: list[str]) -> list[str]:
    return [PY, "-m", "xorsnn", "-q", *argv]


def classify(p: Probe, rc: int | None, out: str, err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    if rc is None:
        return "timeout"
    if "Traceback (most recent call last)" in err or "Traceback (most recent call last)" in out:
        return "traceback"
    if p.expect == "ok":
        if rc != 0:
            return "failed"  # should have run
        problem = p.check(out, err) if p.check else None
        if problem:
            p.result["problem"] = problem
            return "silent"
        return "ok-ran"
    if rc == 0:
        return "silent"
    if rc != 2:
        return "unclear"
    if len(lines) != 1:
        return "multi-line"
    if p.match and not re.search(p.match, lines[0], re.I):
        return "unclear"
    return "ok-refused"


# -- fixtures ----------------------------------------------------------------------------------------
class Fixtures:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.run = tmp / "good_run"

    def build(self) -> None:
        rc, out, err, _ = run_cmd(xorsnn_cmd(["train", *TINY, "--out-dir", str(self.run)]), 300)
        if rc != 0:
            raise SystemExit(f"could not build the fixture run:\n{out}\n{err}")
        code = r"""
import sys, json, torch
from pathlib import Path
from safetensors.torch import load_file, save_file
from safetensors import safe_open
from xorsnn.training.checkpoint import resolve_checkpoint, tensor_digest, TENSORS_SHA
from xorsnn.models import create_model
run, tmp = Path(sys.argv[1]), Path(sys.argv[2])
ck = resolve_checkpoint(run, "LAST")
with safe_open(str(ck.weights), "pt") as f:
    meta = f.metadata()
t = load_file(str(ck.weights))
name = next(k for k, v in t.items() if v.is_floating_point() and v.numel() > 1)
# (a) NaN weight, checksum recomputed (only the finite check can catch it)
for tag, val in (("nan", float("nan")), ("inf", float("inf"))):
    t2 = {k: v.clone() for k, v in t.items()}
    t2[name].view(-1)[0] = val
    m2 = dict(meta); m2[TENSORS_SHA] = json.dumps(tensor_digest(t2))
    save_file(t2, str(tmp / f"{tag}_weights.safetensors"), metadata=m2)
# (b) flipped bits, checksum left as saved
t3 = {k: v.clone() for k, v in t.items()}
t3[name].view(-1)[0] += 1.0
save_file(t3, str(tmp / "flipped.safetensors"), metadata=meta)
# (c) teacher state dicts of the default xoresnet8 for digits (the trainer's teacher arguments)
teacher = create_model("xoresnet8", num_classes=10, in_channels=1, T=2)
sd = {k: v.detach().clone().contiguous() for k, v in teacher.state_dict().items()}
save_file(sd, str(tmp / "teacher_ok.safetensors"))
bad = dict(sd); k0 = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
bad[k0] = bad[k0].clone(); bad[k0].view(-1)[0] = float("nan")
save_file(bad, str(tmp / "teacher_nan.safetensors"))
torch.save(bad, str(tmp / "teacher_nan.pt"))
inf = dict(sd); inf[k0] = inf[k0].clone(); inf[k0].view(-1)[1] = float("inf")
save_file(inf, str(tmp / "teacher_inf.safetensors"))
print(json.dumps({"tensor": name, "weights": str(ck.weights)}))
"""
        rc, out, err, _ = run_cmd([PY, "-c", code, str(self.run), str(self.tmp)], 120)
        if rc != 0:
            raise SystemExit(f"could not build the fixture checkpoints:\n{out}\n{err}")
        self.weights = Path(json.loads(out.strip().splitlines()[-1])["weights"])

    def ckpt_copy(
        self, tag: str, replace: str | None = None, truncate: int | None = None, garbage: bool = False
    ) -> Path:
        """A copy of the good run with its latest weights file replaced / truncated / garbage."""
        dst = self.tmp / f"run_{tag}"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(self.run, dst)
        w = dst / self.weights.relative_to(self.run)
        if replace:
            shutil.copy(self.tmp / replace, w)
        if truncate is not None:
            data = w.read_bytes()
            w.write_bytes(data[:truncate] if truncate >= 0 else data[: len(data) // 2])
        if garbage:
            w.write_bytes(b"\x00garbage" * 64)
        return dst

    def image_folders(self, tag: str, train: list[str], val: list[str]) -> Path:
        import numpy as np
        from PIL import Image

        root = self.tmp / f"folders_{tag}"
        if root.exists():
            shutil.rmtree(root)
        rng = np.random.default_rng(0)
        for split, classes in (("train", train), ("val", val)):
            for c in classes:
                d = root / split / c
                d.mkdir(parents=True)
                for i in range(4):
                    Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(d / f"{i}.png")
        return root


def reports_threads(asked: int) -> Callable[[str, str], str | None]:
    def check(out: str, err: str) -> str | None:
        rows = [ln for ln in out.splitlines() if ln.startswith("| resnet20")]
        if not rows:
            return "no result row"
        got = {int(r.split("|")[4]) for r in rows}
        return None if got == {asked} else f"asked for {asked} threads, reported {sorted(got)}"

    return check


def accuracy_printed(out: str, err: str) -> str | None:
    return None if re.search(r"test accuracy \d+\.\d+%", out) else "no accuracy printed"


def build_probes(fx: Fixtures) -> list[Probe]:
    tmp, run = fx.tmp, str(fx.run)
    ps: list[Probe] = []
    out = lambda tag: str(tmp / f"out_{tag}")  # noqa: E731

    # -- train: bad numbers --------------------------------------------------------------------------
    bad_train = [
        ("lr-negative", ["--lr", "-0.1"], "lr"),
        ("lr-zero", ["--lr", "0"], "lr"),
        ("lr-nan", ["--lr", "nan"], "lr"),
        ("lr-inf", ["--lr", "inf"], "lr"),
        ("lr-string", ["--lr", "fast"], "lr"),
        ("epochs-zero", ["--epochs", "0"], "epochs"),
        ("epochs-negative", ["--epochs", "-3"], "epochs"),
        ("epochs-float", ["--epochs", "1.5"], "epochs"),
        ("batch-size-zero", ["--batch-size", "0"], "batch"),
        ("batch-size-negative", ["--batch-size", "-8"], "batch"),
        ("batch-size-one", ["--batch-size", "1"], "batch"),
        ("T-zero", ["--T", "0"], r"\bT\b"),
        ("T-negative", ["--T", "-1"], r"\bT\b"),
        ("T-string", ["--T", "two"], r"\bT\b"),
        ("grad-clip-negative", ["--grad-clip", "-1"], "grad"),
        ("grad-clip-nan", ["--grad-clip", "nan"], "grad"),
        ("weight-decay-negative", ["--weight-decay", "-1"], "weight"),
        ("weight-decay-inf", ["--weight-decay", "inf"], "weight"),
        ("min-lr-ratio-2", ["--min-lr-ratio", "2"], "min"),
        ("min-lr-ratio-negative", ["--min-lr-ratio", "-0.5"], "min"),
        ("momentum-2", ["--momentum", "2"], "momentum"),
        ("momentum-nan", ["--momentum", "nan"], "momentum"),
        ("label-smoothing-1.5", ["--label-smoothing", "1.5"], "smoothing"),
        ("tet-lambda-negative", ["--tet-lambda", "-1"], "tet"),
        ("kd-tau-zero", ["--kd-tau", "0"], "tau"),
        ("kd-lambda-nan", ["--kd-lambda", "nan"], "kd"),
        ("warmup-negative", ["--warmup-epochs", "-1"], "warmup"),
        ("train-subset-zero", ["--train-subset", "0"], "subset"),
        ("train-subset-negative", ["--train-subset", "-5"], "subset"),
        ("test-subset-zero", ["--test-subset", "0"], "subset"),
        ("keep-last-zero", ["--keep-last", "0"], "keep"),
        ("eval-every-zero", ["--eval-every", "0"], "eval"),
        ("num-workers-negative", ["--num-workers", "-1"], "worker"),
        ("image-size-zero", ["--image-size", "0"], "image"),
        ("crop-padding-negative", ["--crop-padding", "-2"], "pad"),
        ("online-k-zero", ["--online", "sltt-k", "--online-k", "0"], "online"),
        ("log-interval-zero", ["--log-interval", "0"], "log"),
        ("seed-string", ["--seed", "abc"], "seed"),
    ]
    for name, extra, m in bad_train:
        ps.append(Probe(f"train/{name}", ["train", *TINY, *extra, "--out-dir", out(name)], match=m))
    ps.append(
        Probe(
            "train/seed-negative-allowed",
            ["train", *TINY, "--seed", "-1", "--out-dir", out("sn")],
            expect="ok",
            check=accuracy_printed,
        )
    )  # a negative seed is a valid torch seed (NumPy gets seed % 2**32)
    # -- train: unknown / conflicting ----------------------------------------------------------------
    ps += [
        Probe(
            "train/unknown-model",
            ["train", *TINY, "--model", "xoresnet9000", "--out-dir", out("um")],
            match="xoresnet9000",
        ),
        Probe(
            "train/unknown-dataset",
            ["train", *TINY, "--dataset", "imagenet22k", "--out-dir", out("ud")],
            match="imagenet22k",
        ),
        Probe(
            "train/unknown-option",
            ["train", *TINY, "--learning-rate", "0.1", "--out-dir", out("uo")],
            match="learning-rate",
        ),
        Probe(
            "train/unknown-optimizer",
            ["train", *TINY, "--optimizer", "adamx", "--out-dir", out("uopt")],
            match="optimizer",
        ),
        Probe(
            "train/unknown-model-arg",
            ["train", *TINY, "--model-arg", "frobnicate=3", "--out-dir", out("uma")],
            match="frobnicate",
        ),
        Probe(
            "train/model-arg-no-equals",
            ["train", *TINY, "--model-arg", "widths", "--out-dir", out("mane")],
            match="model-arg",
        ),
        Probe(
            "train/model-arg-bad-yaml",
            ["train", *TINY, "--model-arg", "widths=[4, 8", "--out-dir", out("may")],
            match="model-arg",
        ),
        Probe(
            "train/model-arg-T-conflict",
            ["train", *TINY, "--model-arg", "T=3", "--out-dir", out("mat")],
            match=r"\bT\b",
        ),
        Probe(
            "train/model-arg-bool-string",
            ["train", *TINY, "--model-arg", "zero_init_residual='no'", "--out-dir", out("mab")],
            match="zero_init_residual",
        ),
        Probe(
            "train/model-arg-widths-zero",
            ["train", *TINY, "--model-arg", "widths=[0, 8, 8]", "--out-dir", out("maw")],
            match="width",
        ),
        Probe(
            "train/model-arg-stem-width-0",
            ["train", *TINY, "--model-arg", "stem_width=0", "--out-dir", out("masw")],
            match="stem_width",
        ),
        Probe(
            "train/model-arg-input-size-str",
            ["train", *TINY, "--model-arg", "input_size='28'", "--out-dir", out("mais")],
            match="input_size",
        ),
        Probe(
            "train/config-missing", ["train", "--config", str(tmp / "nope.yaml"), "--out-dir", out("cm")], match="nope"
        ),
        Probe("train/device-bogus", ["train", *TINY, "--device", "tpu:7", "--out-dir", out("dev")], match="device"),
        Probe(
            "train/teacher-missing-file",
            ["train", *TINY, "--teacher", "xoresnet8:" + str(tmp / "nope.safetensors"), "--out-dir", out("tmf")],
            match="nope",
        ),
        Probe(
            "train/teacher-nan-weights-safetensors",
            ["train", *TINY, "--teacher", "xoresnet8:" + str(tmp / "teacher_nan.safetensors"), "--out-dir", out("tn")],
            match="non-finite",
        ),
        Probe(
            "train/teacher-nan-weights-pt",
            ["train", *TINY, "--teacher", "xoresnet8:" + str(tmp / "teacher_nan.pt"), "--out-dir", out("tnp")],
            match="non-finite",
        ),
        Probe(
            "train/teacher-inf-weights",
            ["train", *TINY, "--teacher", "xoresnet8:" + str(tmp / "teacher_inf.safetensors"), "--out-dir", out("ti")],
            match="non-finite",
        ),
        Probe(
            "train/teacher-nan-checkpoint",
            ["train", *TINY, "--teacher", "RUN_NAN", "--out-dir", out("tnc")],
            match="non-finite",
        ),
        Probe(
            "train/init-from-nan-checkpoint",
            ["train", *TINY, "--init-from", "RUN_NAN", "--out-dir", out("inc")],
            match="non-finite",
        ),
        Probe(
            "train/init-from-corrupt",
            ["train", *TINY, "--init-from", "RUN_TRUNC", "--out-dir", out("ict")],
            match="corrupt|truncated",
        ),
    ]
    outfile = tmp / "a_file"
    ps.append(
        Probe(
            "train/out-dir-is-a-file",
            ["train", *TINY, "--out-dir", str(outfile)],
            match="a_file",
            setup=lambda: outfile.write_text("x"),
        )
    )
    ps.append(
        Probe(
            "train/out-dir-parent-is-a-file",
            ["train", *TINY, "--out-dir", str(outfile / "run")],
            match="a_file",
            setup=lambda: outfile.write_text("x"),
        )
    )
    # -- resume --------------------------------------------------------------------------------------
    for name, extra, m in [
        ("lr", ["--lr", "0.5"], "lr"),
        ("T", ["--T", "3"], r"\bT\b"),
        ("seed", ["--seed", "7"], "seed"),
        ("batch-size", ["--batch-size", "16"], "batch"),
        ("model-arg", ["--model-arg", "widths=[4, 8, 16]"], "widths"),
        ("optimizer", ["--optimizer", "adamw"], "optimizer"),
    ]:
        ps.append(
            Probe(f"resume/changed-{name}", ["train", *TINY, *extra, "--resume", "--out-dir", "RUN_COPY"], match=m)
        )
    ps.append(
        Probe(
            "resume/more-epochs-allowed",
            ["train", *TINY, "--epochs", "2", "--resume", "--out-dir", "RUN_COPY"],
            expect="ok",
            check=accuracy_printed,
            timeout=120,
        )
    )
    ps.append(
        Probe(
            "resume/corrupt-latest-falls-back",
            ["train", *TINY, "--epochs", "2", "--resume", "--out-dir", "RUN_TWO_CORRUPT"],
            expect="ok",
            check=lambda o, e: None if re.search("corrupt|truncated|fall", e, re.I) else "no warning",
            timeout=150,
        )
    )
    ps.append(
        Probe(
            "resume/nothing-to-resume-from",
            ["train", *TINY, "--resume", "--out-dir", "RUN_ONLY_CORRUPT"],
            match="corrupt|truncated|intact|checkpoint",
        )
    )
    ps.append(Probe("train/second-run-same-out-dir", ["raw"], raw=True, match="pid|lock|another"))
    # -- eval ----------------------------------------------------------------------------------------
    ps += [
        Probe("eval/good-control", ["eval", run, "--test-subset", "64"], expect="ok", check=accuracy_printed),
        Probe("eval/T-negative", ["eval", run, "--T", "-1"], match=r"\bT\b"),
        Probe("eval/T-zero", ["eval", run, "--T", "0"], match=r"\bT\b"),
        Probe("eval/batch-size-zero", ["eval", run, "--batch-size", "0"], match="batch"),
        Probe("eval/batch-size-string", ["eval", run, "--batch-size", "lots"], match="batch"),
        Probe("eval/test-subset-negative", ["eval", run, "--test-subset", "-4"], match="subset"),
        Probe("eval/missing-checkpoint", ["eval", str(tmp / "no_such_run")], match="no_such_run"),
        Probe("eval/nan-weights", ["eval", "RUN_NAN"], match="non-finite"),
        Probe("eval/inf-weights", ["eval", "RUN_INF"], match="non-finite"),
        Probe("eval/flipped-bits", ["eval", "RUN_FLIP"], match="checksum|corrupt"),
        Probe("eval/truncated", ["eval", "RUN_TRUNC"], match="corrupt|truncated"),
        Probe("eval/truncated-to-8-bytes", ["eval", "RUN_TRUNC8"], match="corrupt|truncated"),
        Probe("eval/garbage-file", ["eval", "RUN_GARBAGE"], match="corrupt|truncated"),
        Probe(
            "eval/empty-dir",
            ["eval", str(tmp / "empty_dir")],
            match="empty_dir|checkpoint",
            setup=lambda: (tmp / "empty_dir").mkdir(exist_ok=True),
        ),
        Probe(
            "eval/wrong-dataset-classes",
            ["eval", run, "--dataset", "cifar10", "--test-subset", "16"],
            match="class|channel",
        ),
        Probe("eval/unknown-dataset", ["eval", run, "--dataset", "imagenet22k"], match="imagenet22k"),
        Probe("eval/packed-float-model", ["eval", run, "--engine", "packed", "--device", "cpu"], match="binary"),
        Probe("eval/device-bogus", ["eval", run, "--device", "tpu:7"], match="device"),
    ]
    # -- export / analyze ----------------------------------------------------------------------------
    ps += [
        Probe("export/no-format", ["export", run, out("exp_nf")], match="format"),
        Probe(
            "export/batch-zero", ["export", "--format", "nir", run, out("exp_b0.nir"), "--batch", "0"], match="batch"
        ),
        Probe("export/batch-negative", ["export", "--reparam", run, out("exp_bn"), "--batch", "-2"], match="batch"),
        Probe(
            "export/input-size-zero",
            ["export", "--format", "nir", run, out("exp_is.nir"), "--input-size", "0"],
            match="input",
        ),
        Probe("export/nan-weights", ["export", "--format", "nir", "RUN_NAN", out("exp_nan.nir")], match="non-finite"),
        Probe("export/truncated", ["export", "--reparam", "RUN_TRUNC", out("exp_tr")], match="corrupt|truncated"),
        Probe(
            "export/out-parent-is-a-file",
            ["export", "--format", "nir", run, str(outfile / "x.nir")],
            match="a_file",
            setup=lambda: outfile.write_text("x"),
        ),
        Probe("analyze/batches-zero", ["analyze", run, "--batches", "0", "--no-plots"], match="batches"),
        Probe("analyze/batch-size-negative", ["analyze", run, "--batch-size", "-1", "--no-plots"], match="batch"),
        Probe("analyze/T-zero", ["analyze", run, "--T", "0", "--no-plots"], match=r"\bT\b"),
        Probe("analyze/nan-weights", ["analyze", "RUN_NAN", "--no-plots"], match="non-finite"),
        Probe("analyze/truncated", ["analyze", "RUN_TRUNC", "--no-plots"], match="corrupt|truncated"),
        Probe(
            "analyze/raster-sample-huge",
            [
                "analyze",
                run,
                "--raster-sample",
                "100000",
                "--no-plots",
                "--batches",
                "1",
                "--no-gradients",
                "--out",
                out("an_rs"),
            ],
            match="raster",
        ),
        Probe(
            "analyze/out-is-a-file",
            ["analyze", run, "--no-plots", "--batches", "1", "--no-gradients", "--out", str(outfile)],
            match="a_file",
            setup=lambda: outfile.write_text("x"),
        ),
    ]
    # -- compare / smoke / bench-infer ---------------------------------------------------------------
    tiny_cmp = [a for a in TINY if a not in ("--model", "xoresnet8")]
    ps += [
        Probe(
            "compare/unknown-model",
            ["compare", "xoresnet8", "nosuchnet", *tiny_cmp, "--out", out("cmp_u")],
            match="nosuchnet",
        ),
        Probe(
            "compare/lr-negative", ["compare", "xoresnet8", *tiny_cmp, "--lr", "-1", "--out", out("cmp_lr")], match="lr"
        ),
        Probe("compare/T-zero", ["compare", "xoresnet8", *tiny_cmp, "--T", "0", "--out", out("cmp_t")], match=r"\bT\b"),
        Probe("smoke/unknown-model", ["smoke", "nosuchnet"], match="nosuchnet"),
        Probe("smoke/T-zero", ["smoke", "xoresnet8", "--T", "0"], match=r"\bT\b"),
        Probe("smoke/T-negative", ["smoke", "xoresnet8", "--T", "-2"], match=r"\bT\b"),
        Probe("smoke/batch-zero", ["smoke", "xoresnet8", "--batch", "0"], match="batch"),
        Probe("smoke/batch-one-allowed", ["smoke", "xoresnet8", "--batch", "1"], expect="ok"),  # BN sees T*B samples
        Probe("smoke/batch-string", ["smoke", "xoresnet8", "--batch", "x"], match="batch"),
        Probe(
            "bench-infer/threads-64",
            ["bench-infer", "--arch", "resnet20", "--batch", "1", "--T", "1", "--repeats", "1", "--threads", "64"],
            match="threads",
            timeout=180,
        ),
        Probe(
            "bench-infer/threads-1-control",
            ["bench-infer", "--arch", "resnet20", "--batch", "1", "--T", "1", "--repeats", "1", "--threads", "1"],
            expect="ok",
            check=reports_threads(1),
            timeout=180,
        ),
        Probe(
            "bench-infer/threads-zero",
            ["bench-infer", "--arch", "resnet20", "--batch", "1", "--threads", "0"],
            match="threads",
        ),
        Probe(
            "bench-infer/threads-negative",
            ["bench-infer", "--arch", "resnet20", "--batch", "1", "--threads", "-1"],
            match="threads",
        ),
        Probe(
            "bench-infer/batch-zero",
            ["bench-infer", "--arch", "resnet20", "--batch", "0", "--threads", "1"],
            match="batch",
        ),
        Probe(
            "bench-infer/T-zero",
            ["bench-infer", "--arch", "resnet20", "--batch", "1", "--T", "0", "--threads", "1"],
            match=r"\bT\b",
        ),
        Probe(
            "bench-infer/repeats-zero",
            ["bench-infer", "--arch", "resnet20", "--batch", "1", "--repeats", "0", "--threads", "1"],
            match="repeat",
        ),
        Probe("bench-infer/unknown-arch", ["bench-infer", "--arch", "resnet1000"], match="arch"),
    ]
    # -- data ----------------------------------------------------------------------------------------
    ps += [
        Probe(
            "data/imagefolder-val-missing-class",
            [
                "train",
                *TINY,
                "--dataset",
                "imagefolder",
                "--data-dir",
                "FOLD_MISSING",
                "--image-size",
                "8",
                "--batch-size",
                "4",
                "--out-dir",
                out("fm"),
            ],
            match="cls_c|class",
        ),
        Probe(
            "data/imagefolder-val-extra-class",
            [
                "train",
                *TINY,
                "--dataset",
                "imagefolder",
                "--data-dir",
                "FOLD_EXTRA",
                "--image-size",
                "8",
                "--batch-size",
                "4",
                "--out-dir",
                out("fe"),
            ],
            match="cls_z|class",
        ),
        Probe(
            "data/imagefolder-no-val",
            [
                "train",
                *TINY,
                "--dataset",
                "imagefolder",
                "--data-dir",
                "FOLD_NOVAL",
                "--image-size",
                "8",
                "--batch-size",
                "4",
                "--out-dir",
                out("fn"),
            ],
            match="val",
        ),
        Probe(
            "data/missing-data-dir",
            ["train", *TINY, "--dataset", "fashion_mnist", "--data-dir", str(tmp / "no_data"), "--out-dir", out("nd")],
            match="no_data|download|not found|missing",
        ),
        Probe("api/float64-input", ["raw"], raw=True, match="float64|dtype"),
        Probe("api/float16-input", ["raw"], raw=True, match="float16|dtype"),
        Probe("api/label-out-of-range", ["raw"], raw=True, match="label"),
    ]
    return ps


API_SNIPPET = r"""
import sys, torch
sys.path.insert(0, "tests")
from xorsnn.data import DataBundle, ImageArrays
from xorsnn.data.digits import DIGITS_INFO
from xorsnn.training import TrainConfig, train
from xorsnn.cli import _one_line
kind, out = sys.argv[1], sys.argv[2]
g = torch.Generator().manual_seed(0)
def make(n, dtype, bad_label=False):
    y = torch.randint(0, 8, (n,), generator=g)
    if bad_label: y[3] = 10
    x = torch.randint(0, 255, (n, 1, 8, 8), generator=g)
    if dtype == torch.uint8:
        return ImageArrays(x.to(dtype), y)
    return torch.utils.data.TensorDataset(x.to(dtype) / 255, y)  # float tensors from the user's own pipeline
dtype = {"float64": torch.float64, "float16": torch.float16}.get(kind, torch.uint8)
data = DataBundle(DIGITS_INFO, make(64, dtype, kind == "label"), make(32, dtype))
cfg = TrainConfig.from_dict(dict(model="xoresnet8", dataset="digits", epochs=1, batch_size=16, T=2, out_dir=out,
                                 num_workers=0, progress=False, model_kwargs={"widths": [4, 8, 8]}))
try:
    train(cfg, data)
except (ValueError, TypeError, FloatingPointError) as exc:
    print(_one_line(exc), file=sys.stderr); sys.exit(2)
print("trained without complaint")
"""

LOCK_SNIPPET = r"""
import subprocess, sys, time, os
from pathlib import Path
out = sys.argv[1]
cmd = [sys.executable, "-m", "xorsnn", "-q", "train", *sys.argv[2:], "--epochs", "30", "--out-dir", out]
first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(300):  # wait until the first run holds the directory
        p = Path(out)
        if (p / "config.yaml").exists() or any(p.glob(".lock*")) or (p / "checkpoints").exists():
            break
        time.sleep(0.1)
    time.sleep(0.5)
    second = subprocess.run(cmd[:-4] + ["--epochs", "1", "--out-dir", out], capture_output=True, text=True)
    sys.stdout.write(second.stdout); sys.stderr.write(second.stderr)
    rc = second.returncode
finally:
    first.kill(); first.wait()
sys.exit(rc)
"""


def resolve_placeholders(fx: Fixtures, p: Probe) -> list[str]:
    tmp = fx.tmp
    lazy = {
        "RUN_NAN": lambda: fx.ckpt_copy("nan", replace="nan_weights.safetensors"),
        "RUN_INF": lambda: fx.ckpt_copy("inf", replace="inf_weights.safetensors"),
        "RUN_FLIP": lambda: fx.ckpt_copy("flip", replace="flipped.safetensors"),
        "RUN_TRUNC": lambda: fx.ckpt_copy("trunc", truncate=-1),
        "RUN_TRUNC8": lambda: fx.ckpt_copy("trunc8", truncate=8),
        "RUN_GARBAGE": lambda: fx.ckpt_copy("garbage", garbage=True),
        "RUN_COPY": lambda: fx.ckpt_copy("resume_" + re.sub(r"\W", "_", p.name)),
        "RUN_ONLY_CORRUPT": lambda: fx.ckpt_copy("only_corrupt", truncate=-1),
        "RUN_TWO_CORRUPT": lambda: _two_epoch_corrupt(fx),
        "FOLD_MISSING": lambda: fx.image_folders("missing", ["cls_a", "cls_b", "cls_c"], ["cls_a", "cls_b"]),
        "FOLD_EXTRA": lambda: fx.image_folders("extra", ["cls_a", "cls_b"], ["cls_a", "cls_b", "cls_z"]),
        "FOLD_NOVAL": lambda: _no_val(fx),
    }
    if p.raw:
        if p.name.startswith("api/"):
            kind = p.name.split("/")[1].split("-")[0]
            return [PY, "-c", API_SNIPPET, kind, str(tmp / f"api_{kind}")]
        return [PY, "-c", LOCK_SNIPPET, str(tmp / "locked_run"), *[a for a in TINY if a != "--epochs" and a != "1"]]
    argv = [str(lazy[a]()) if a in lazy else a for a in p.argv]
    return xorsnn_cmd(argv)


def _no_val(fx: Fixtures) -> Path:
    root = fx.image_folders("noval", ["cls_a", "cls_b"], [])
    shutil.rmtree(root / "val", ignore_errors=True)
    return root


def _two_epoch_corrupt(fx: Fixtures) -> Path:
    """A run with two epochs whose latest checkpoint is truncated (the first is intact)."""
    dst = fx.ckpt_copy("two_corrupt")
    rc, out, err, _ = run_cmd(
        xorsnn_cmd(["train", *TINY, "--epochs", "2", "--keep-last", "3", "--resume", "--out-dir", str(dst)]), 200
    )
    ckpts = sorted((dst / "checkpoints").glob("epoch_*"))
    if rc != 0 or len(ckpts) < 2:
        raise RuntimeError(f"fixture failed: {err}")
    w = ckpts[-1] / "model.safetensors"
    w.write_bytes(w.read_bytes()[:100])
    return dst


def versions() -> str:
    code = (
        "import torch, numpy, xorsnn, platform; print(f'Python {platform.python_version()}, torch {torch.__version__}, "
        'numpy {numpy.__version__}, xorsnn {getattr(xorsnn, "__version__", "?")}\')'
    )
    return subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env()).stdout.strip()


def machine() -> str:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} CPU cores, {platform.system()} {platform.release()}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/fault_probes.md"))
    ap.add_argument("--only", default=None, help="regex: run only matching probes")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="xorsnn_probes_"))
    fx = Fixtures(tmp)
    fx.build()
    probes = build_probes(fx)
    if args.only:
        probes = [p for p in probes if re.search(args.only, p.name)]
    for p in probes:
        try:
            if p.setup:
                p.setup()
            cmd = resolve_placeholders(fx, p)
        except Exception as exc:  # a fixture failed: record it, go on
            p.result = {
                "rc": None,
                "cls": "fixture-failed",
                "line": f"{type(exc).__name__}: {exc}"[:200],
                "cmd": p.argv,
                "s": 0.0,
            }
            print(f"{p.name:<45} fixture-failed {exc}", flush=True)
            continue
        rc, out, err, dt = run_cmd(cmd, p.timeout)
        cls = classify(p, rc, out, err)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        first = lines[0] if lines else (out.strip().splitlines()[-1] if out.strip() else "")
        if cls == "traceback":
            first = next((ln for ln in reversed(err.splitlines()) if ln.strip()), first)
        shown = p.result.get("problem")
        p.result.update(rc=rc, cls=cls, line=(first + (f" [{shown}]" if shown else ""))[:220], cmd=cmd, s=dt)
        print(f"{p.name:<45} rc={rc!s:<4} {cls:<11} {dt:5.1f}s  {first[:110]}", flush=True)
    total = time.perf_counter() - t0
    counts: dict[str, int] = {}
    for p in probes:
        counts[p.result["cls"]] = counts.get(p.result["cls"], 0) + 1

    def show_cmd(cmd: list[str]) -> str:
        parts = (
            ["xorsnn"] + cmd[3:]
            if cmd[:3] == [PY, "-m", "xorsnn"]
            else (["python -c <snippet>"] + cmd[3:] if cmd[:2] == [PY, "-c"] else cmd)
        )
        s = " ".join(parts).replace(str(tmp), "$TMP")
        s = s.replace(" ".join(TINY), "$TINY")
        return s.replace("|", "\\|")

    lines = [
        "# Fault probe sweep (issue 15)",
        "",
        f"{len(probes)} probes in {total:.0f} s. Command: `OMP_NUM_THREADS=1 XORSNN_DATA=/work/data python "
        "benchmarks/fault_probes.py`" + (f" (`--only {args.only}`)" if args.only else ""),
        "",
        f"Machine: {machine()}; {versions()}.",
        "",
        f"`$TINY` = `{' '.join(TINY)}`; `$TMP` = a fresh temporary directory (fixture run trained first with "
        "`xorsnn -q train $TINY`). Every command runs as `python -m xorsnn -q ...`.",
        "",
        "Classes: `ok-refused` exit 2 and one stderr line naming the problem, no traceback; `ok-ran` a control "
        "that should work did (output checked); `traceback`; `silent` exit 0 where it should refuse or a wrong "
        "number printed; `multi-line`; `unclear` (refused but the line does not name the problem, or exit code "
        "not 0/2); `failed` (a control did not run); `timeout`.",
        "",
        "## Summary",
        "",
        "| class | probes |",
        "|---|---:|",
        *[f"| {k} | {v} |" for k, v in sorted(counts.items())],
        "",
        "## Probes",
        "",
        "| probe | command | exit | class | first stderr line |",
        "|---|---|---:|---|---|",
    ]
    for p in probes:
        r = p.result
        line = str(r["line"]).replace(str(tmp), "$TMP").replace("|", "\\|")
        lines.append(f"| {p.name} | `{show_cmd(r['cmd'])}` | {r['rc']} | {r['cls']} | {line} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n" + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())), f"({total:.0f} s) -> {args.out}")
    if not args.keep_tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
