"""The web service: Django models, services, the REST API, the web UI and the job runners."""
