"""An estimator module whose class only exists once the module runs (for the resolver test)."""

from sklearn.base import BaseEstimator, ClassifierMixin

Dynamic = type("Dynamic", (ClassifierMixin, BaseEstimator), {"fit": None, "predict": None})
