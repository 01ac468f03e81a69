"""Typed records that pass between stages and live in files.

One module per record, each a frozen dataclass with one reader and one writer:

- `metrics`   metrics.json: point estimates, intervals, slices (evaluate -> gate, report)
- `verdict`   verdict.json: the gate's rows (gate -> report, promote)
- `build`     build.json: the image built, smoke-tested and pushed (build -> promote)
- `promotion` promotion.json: the branch, commit and pull request of a promotion
- `release`   the release record in the GitOps repository (promote writes, gate reads)
- `run`       run.json: which spec a run directory was made from
- `model_summary`  model/manifest.json's account of the model (read only: training writes it)

Readers accept files written by older versions (missing optional fields take their
defaults) and refuse malformed ones with an MlopsError naming the file and the field.
`gitops_mlops.rundir.RunDir` owns where each file lives.
"""
