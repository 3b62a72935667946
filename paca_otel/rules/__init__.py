"""Alert rules: expressions, their evaluation, the Rule model and its YAML, PromQL export."""
