"""wxsub: WeChat Mini Program subscription messages on AWS Lambda."""

__version__ = "0.1.0"
