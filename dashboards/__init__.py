"""The pages (operations wall, commune console, citizen page): static assets served by the API.

They talk to the service only over HTTP and websockets.
"""
