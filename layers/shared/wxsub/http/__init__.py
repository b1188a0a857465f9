"""The HTTP face of wxsub: one resolver factory, the error mapping, and the routes."""
