"""gitops-mlops: a declarative mlops.yaml turned into a gated, GitOps-promoted model release."""

__version__ = "0.1.0"
