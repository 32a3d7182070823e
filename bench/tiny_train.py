"""Train the shipped `tiny` model (fastserve_nb/assets/tiny) and record the figures in bench/tiny_train.json.

The number of steps and the learning rate are chosen on a *validation* split carved out of the training documents
(the held-out documents are never looked at while choosing); then the chosen recipe is trained twice on the whole
training split to show that it reproduces.

Here (Python 3.11, CPU), build the data the GPU machine reads, so it trains on this Python's corpus:
    python bench/tiny_train.py prepare            # -> .carry/data (corpus + tokenizer), .carry/val_data
On the GPU machine (PYTHONPATH=. , no install):
    python3 bench/tiny_train.py gpu --out $OUT    # -> $OUT/run1/{config.json,model.safetensors,train_meta.json}, ...
Back here: install run 1 as fastserve_nb/assets/tiny, re-score it on the CPU, write bench/tiny_train.{json,png}:
    python bench/tiny_train.py record --src /work/.device/2 --command "..."
"""
import argparse, json, math, shutil, time
from pathlib import Path

import torch

from fastserve_nb.corpus import EOT, is_heldout
from fastserve_nb.tiny import load_data, train_tiny

DATA, VAL_DATA = Path(".carry/data"), Path(".carry/val_data")
SWEEP = [dict(steps=300, lr=3e-3), dict(steps=600, lr=3e-3), dict(steps=1200, lr=3e-3), dict(steps=600, lr=1e-3)]
FIXED = dict(batch_size=32, seq_len=512, warmup=50, weight_decay=0.1, seed=0)


def prepare():
    data = load_data(DATA, tokenizer="train")
    docs = (DATA / "train.txt").read_text().split(EOT)
    val = [is_heldout("validation:" + d) for d in docs]
    VAL_DATA.mkdir(parents=True, exist_ok=True)
    (VAL_DATA / "train.txt").write_text(EOT.join(d for d, v in zip(docs, val) if not v))
    (VAL_DATA / "heldout.txt").write_text(EOT.join(d for d, v in zip(docs, val) if v))
    shutil.copytree(DATA / "tokenizer", VAL_DATA / "tokenizer", dirs_exist_ok=True)
    (VAL_DATA / "data.json").write_text(json.dumps({**data.meta, "split": "validation documents carved from the training split"}, indent=2))
    print(data.meta, f"validation documents: {sum(val)} of {len(docs)}")


def gpu(out: Path, device: str = "cuda"):
    t0, sweep = time.time(), []
    for s in SWEEP:
        m = train_tiny(f"/tmp/sweep/{s['steps']}-{s['lr']}", **FIXED, **s, data_dir=VAL_DATA, device=device, progress=False)
        sweep.append({**s, "validation_perplexity": m["heldout_perplexity"], "train_seconds": m["train_seconds"],
                      "curve": [(p["step"], p.get("heldout_loss")) for p in m["loss_curve"] if "heldout_loss" in p]})
        print("sweep", sweep[-1], flush=True)
    best = min(sweep, key=lambda r: r["validation_perplexity"])
    chosen = {**FIXED, "steps": best["steps"], "lr": best["lr"]}
    runs = [train_tiny(d, **chosen, data_dir=DATA, device=device, progress=False) for d in (out / "run1", Path("/tmp/run2"))]
    for r in runs: print("run", r["heldout_perplexity"], r["unigram_perplexity"], r["train_seconds"], flush=True)
    from safetensors.torch import load_file
    w1, w2 = load_file(str(out / "run1" / "model.safetensors")), load_file("/tmp/run2/model.safetensors")
    max_diff = max((w1[k].float() - w2[k].float()).abs().max().item() for k in w1)
    shutil.copy("/tmp/run2/train_meta.json", out / "run2_meta.json")
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"): (out / "run1" / f).unlink()  # = .carry/data/tokenizer
    p1, p2 = runs[0]["heldout_perplexity"], runs[1]["heldout_perplexity"]
    summary = {"device": runs[0]["device"], "torch": torch.__version__, "python": runs[0]["python"], "sweep": sweep,
               "chosen": chosen, "heldout_perplexity": [p1, p2], "relative_difference": abs(p1 - p2) / min(p1, p2),
               "unigram_perplexity": runs[0]["unigram_perplexity"], "max_abs_weight_difference": max_diff,
               "wall_seconds": round(time.time() - t0, 1)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "sweep"}, indent=2))


def record(src: Path, command: str):
    "Here, after the GPU run: install run1 as the shipped model, re-score it on the CPU, write bench/tiny_train.{json,png}."
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from fastserve_nb.pretrained import load_model, perplexity, tiny_path
    from fastserve_nb.tiny import unigram_perplexity
    dst = tiny_path(); dst.mkdir(parents=True, exist_ok=True)
    for f in (src / "run1").iterdir(): shutil.copyfile(f, dst / f.name)   # contents only: the files that came back are read-only
    for f in (DATA / "tokenizer").iterdir(): shutil.copy(f, dst / f.name)
    summary, meta = json.loads((src / "summary.json").read_text()), json.loads((dst / "train_meta.json").read_text())
    run2 = json.loads((src / "run2_meta.json").read_text())
    data, (model, _) = load_data(DATA), load_model("tiny", device="cpu")
    t0 = time.time()
    cpu_ppl = perplexity(model, data.heldout_ids, ctx=meta["eval"]["ctx"])
    res = {"command": command, "device": summary["device"], "torch": summary["torch"], "python": summary["python"],
           "corpus": meta["corpus"], "chosen": summary["chosen"],
           "sweep_on_validation": [{k: r[k] for k in ("steps", "lr", "validation_perplexity", "train_seconds")} for r in summary["sweep"]],
           "runs": [{"heldout_perplexity": m["heldout_perplexity"], "train_seconds": m["train_seconds"],
                     "tokens_per_second": m["tokens_per_second"]} for m in (meta, run2)],
           "relative_difference": summary["relative_difference"], "max_abs_weight_difference": summary["max_abs_weight_difference"],
           "unigram_perplexity": unigram_perplexity(data.train_ids, data.heldout_ids, 4096),
           "cpu_recheck": {"heldout_perplexity": cpu_ppl, "seconds": round(time.time() - t0, 1), "torch": torch.__version__},
           "model_bytes": sum(f.stat().st_size for f in dst.iterdir())}
    Path("bench/tiny_train.json").write_text(json.dumps(res, indent=2))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for m, name in ((meta, "run 1"), (run2, "run 2")):
        ev = [p for p in m["loss_curve"] if "heldout_loss" in p]
        a.plot([p["step"] for p in m["loss_curve"]], [p["loss"] for p in m["loss_curve"]], label=f"{name} train")
        a.plot([p["step"] for p in ev], [p["heldout_loss"] for p in ev], "o-", label=f"{name} held-out")
    a.axhline(math.log(res["unigram_perplexity"]), color="gray", ls="--", label="unigram")
    a.set(xlabel="step", ylabel="loss (nats/token)", ylim=(0, 9), title=f"tiny: 2 runs, {summary['device']}"); a.legend()
    for r in summary["sweep"]:
        b.plot([s for s, _ in r["curve"]], [l for _, l in r["curve"]], "o-", ms=3, label=f"{r['steps']} steps, lr {r['lr']}")
    b.set(xlabel="step", ylabel="validation loss", title="choosing steps and lr on validation documents"); b.legend()
    fig.tight_layout(); fig.savefig("bench/tiny_train.png", dpi=110)
    print(json.dumps({k: v for k, v in res.items() if k not in ("corpus", "sweep_on_validation")}, indent=2))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["prepare", "gpu", "record"])
    ap.add_argument("--out", type=Path, default=Path("runs/tiny"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--src", type=Path, help="record: the folder the GPU run's $OUT came back into")
    ap.add_argument("--command", default="", help="record: the device command, to keep with the figures")
    a = ap.parse_args()
    if a.mode == "prepare": prepare()
    elif a.mode == "gpu": gpu(a.out, a.device)
    else: record(a.src, a.command)
