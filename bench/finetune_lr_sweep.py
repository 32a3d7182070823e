"""Learning-rate sweep for the five fine-tuning methods of chapter 03, judged on the *validation* split only.

    OMP_NUM_THREADS=1 python bench/finetune_lr_sweep.py --steps 100   # -> bench/finetune_lr_sweep.json

Each run: `tiny`, 100 steps of 16 docstring-task examples, validation loss (nats / completion token) on 100
validation examples every 25 steps. nbs/03c_finetune_compare.ipynb uses the learning rate with the lowest final
validation loss per method (`finetune_compare.LEARNING_RATES`).
"""
import argparse, copy, json, time
from pathlib import Path

from fastserve_nb import pretrained
from fastserve_nb.finetune.training import docstring_task, fit
from fastserve_nb.finetune.compare import method_builders

GRID = {"full fine-tuning": [3e-4, 1e-3], "feed-forward only": [1e-3, 3e-3], "LoRA (r=8, all linear)": [3e-3, 1e-2],
        "prompt tuning (n=20)": [1e-2, 3e-2, 1e-1], "prefix tuning (n=20)": [1e-3, 3e-3, 1e-2]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--only", default=None, help="one method name")
    ap.add_argument("--out", default=str(Path(__file__).parent / "finetune_lr_sweep.json"))
    a = ap.parse_args()
    task = docstring_task()
    base, tok = pretrained.load_model("tiny", "cpu")
    build = method_builders(tok)
    out = json.loads(Path(a.out).read_text()) if Path(a.out).exists() else {}
    for name, lrs in GRID.items():
        if a.only and name != a.only: continue
        for lr in lrs:
            t = time.time()
            r = fit(build[name](copy.deepcopy(base)), tok, task["train"], task["valid"][:100], steps=a.steps, lr=lr,
                    batch_size=16, eval_every=a.steps // 4)
            out.setdefault(name, {})[str(lr)] = r.valid_loss
            print(name, lr, [round(l, 3) for _, l in r.valid_loss], f"{time.time() - t:.0f}s", flush=True)
            Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
