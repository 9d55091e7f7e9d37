"""Tests of flaskr_async/system."""
