"""Evaluation: functions of predictions and tables (metrics, intervals, calibration, thresholds, sets)."""
