"""Compressing a trained encoder: width pruning by activation importance (Minitron)."""
