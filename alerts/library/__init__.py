"""The rule library: each rule as versioned data with a pure evaluator (see catalogue.py)."""
