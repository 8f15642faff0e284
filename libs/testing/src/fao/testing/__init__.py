"""Test helpers for Fao: fakes of external services and pytest fixtures shared by every package."""
