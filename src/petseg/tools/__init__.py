"""Commands no pipeline stage runs: predict, reports, the ablation table, the bench, the sample, profiles."""
