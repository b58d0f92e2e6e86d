"""The HTTP service: FastAPI app factory, one router per resource, typed dependencies."""
