"""Tests of flaskr_async/db."""
