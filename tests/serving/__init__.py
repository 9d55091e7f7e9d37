"""Tests of flaskr_async/serving."""
