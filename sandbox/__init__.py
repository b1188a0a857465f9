"""WeChat sandbox: a local stand-in for api.weixin.qq.com (see README.md in this folder)."""

from sandbox.server import SEEDED_LONG_TERM, SEEDED_ONE_TIME, SEEDED_ONE_TIME_2, SEEDED_ONE_TIME_3, Sandbox

__all__ = ["SEEDED_LONG_TERM", "SEEDED_ONE_TIME", "SEEDED_ONE_TIME_2", "SEEDED_ONE_TIME_3", "Sandbox"]
