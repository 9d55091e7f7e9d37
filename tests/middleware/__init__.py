"""Tests of flaskr_async/middleware."""
