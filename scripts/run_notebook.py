"""Run one notebook top to bottom as a reader would (full sizes: IN_TEST unset), with extra cell flags turned on.

    PYTHONPATH=$PWD python scripts/run_notebook.py nbs/03c_finetune_compare.ipynb cuda

Used on the GPU machines to produce the `#| cuda` figures of a notebook at the sizes its CPU tables use;
`nbdev-test --flags cuda` runs the same cells at test sizes.
"""
import os, sys

import nbdev.test

if __name__ == "__main__":
    if len(sys.argv) < 2: sys.exit(__doc__)
    nbdev.test.in_notebook = lambda: True       # test_nb sets IN_TEST unless it thinks it runs inside a notebook
    os.environ.pop("IN_TEST", None)
    ok, secs = nbdev.test.test_nb(sys.argv[1], skip_flags=["notest", "slow", "cuda", "multigpu"], force_flags=sys.argv[2:],
                                  verbose=True)
    print(f"{sys.argv[1]}: {'passed' if ok else 'FAILED'} in {secs:.0f} s")
    sys.exit(0 if ok else 1)
