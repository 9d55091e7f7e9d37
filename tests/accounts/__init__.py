"""Tests of flaskr_async/accounts."""
