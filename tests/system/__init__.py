"""Tests through real processes: hypercorn and the serve command, nginx, PostgreSQL, Chromium."""
