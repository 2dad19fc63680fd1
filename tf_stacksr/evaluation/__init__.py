"""Evaluation: scores of upscalers on aligned faces (`eval_lib`), their face sources (`eval_data`), reports and the methods they compare."""
