"""Every path and file name of the project, in one place (relative to the repository root).

Folders are the defaults of the stages' ``--data``/``--out`` options and of dvc.yaml; the
file names are what a stage writes inside the folder it is given.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")

# data: the download stage's verified files, the decode stage's arrays
RAW = Path("data/raw")
PROCESSED = Path("data/processed")
NPZ_NAME = "mnist.npz"
SUMMARY_NAME = "summary.json"

# models/: what the train stage writes
MODELS = Path("models")
MODEL_FILE = "model.skops"
META_FILE = "model.json"
TIMINGS_FILE = "train.timings.json"  # run record: git commit, host, timings (git-ignored)

# reports/: what evaluate, report and sweep write
REPORTS = Path("reports")
METRICS_FILE = "metrics.json"
REPORT_FILE = "README.md"
FINGERPRINT_FILE = "fingerprint.json"  # host, BLAS kernel, packages of the results (make verify)
FIGURES_DIR = "figures"
PLOTS_DIR = "plots"
FIGURE_FILES = {  # what evaluate draws, relative to reports/
    "digits": f"{FIGURES_DIR}/digits.png",
    "confusion": f"{FIGURES_DIR}/confusion.png",
    "mistakes": f"{FIGURES_DIR}/mistakes.png",
}
CONFUSION_CSV = f"{PLOTS_DIR}/confusion.csv"  # DVC plot data
SWEEP_FILE = "sweep.md"  # make sweep
SWEEP_FIGURE = f"{FIGURES_DIR}/sweep.png"

# build/: scratch space (git-ignored)
BUILD = Path("build")
