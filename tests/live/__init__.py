"""Tests of flaskr_async/live."""
