"""The nurses' dashboard: worklist and patient pages, served by the platform's FastAPI server."""

from dashboard.app import create_dashboard

__all__ = ["create_dashboard"]
