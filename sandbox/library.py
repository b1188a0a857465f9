"""The public template library the ``wxaapi/newtmpl`` endpoints serve (wechat-api.md §5.1–5.4).

A small, fixed library: the account's four categories and thirteen titles in them, each with
its keywords (``kid``, name, example, §4 rule). Every example satisfies its rule as
``sandbox.keywords`` checks it. Types follow §5.2: 2 is one-time, 3 is long-term; the long-term
titles sit in the education and medical categories, where §3 says long-term templates are
available.

Two titles match seeded templates: 订单发货通知 (kids 1–5) is ``SEEDED_ONE_TIME`` and 预约成功通知
(kids 1–5) is ``SEEDED_ONE_TIME_2``, with the same names, keys and examples. So adding either with
exactly those kids answers 200022, as WeChat does for a title and keywords already added.

A template added from the library names each keyword ``<rule><kid>`` (kid 2 of rule ``time``
is ``time2``), so the keys of one template never collide. wechat-api.md does not say how WeChat
numbers the keys; the product reads them from gettemplate's ``content`` and must not rely on
this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.model import LONG_TERM, ONE_TIME, Template, new_template_id


@dataclass(frozen=True)
class Category:
    id: int
    name: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class Keyword:
    kid: int
    name: str
    rule: str
    example: str

    @property
    def key(self) -> str:
        """The keyword's name in a private template's content and in send's ``data``."""
        return f"{self.rule}{self.kid}"

    def to_json(self) -> dict[str, Any]:
        return {"kid": self.kid, "name": self.name, "example": self.example, "rule": self.rule}


@dataclass(frozen=True)
class Title:
    tid: int
    title: str
    type: int
    category_id: int
    keywords: tuple[Keyword, ...]

    def keyword(self, kid: int) -> Keyword | None:
        return next((k for k in self.keywords if k.kid == kid), None)

    def to_json(self) -> dict[str, Any]:
        """The getpubtemplatetitles item; ``categoryId`` is a string as in §5.2's example."""
        return {"tid": self.tid, "title": self.title, "type": self.type, "categoryId": str(self.category_id)}


SHOPPING = 307
DELIVERY = 411
EDUCATION = 586
MEDICAL = 618

CATEGORIES = (
    Category(SHOPPING, "电商平台"),
    Category(DELIVERY, "快递、物流"),
    Category(EDUCATION, "在线教育"),
    Category(MEDICAL, "医疗服务"),
)


def _title(tid: int, title: str, type_: int, category: int, *keywords: tuple[str, str, str]) -> Title:
    """A title whose keywords, given as (name, rule, example), get kids 1, 2, 3… in order."""
    items = tuple(Keyword(kid, name, rule, example) for kid, (name, rule, example) in enumerate(keywords, 1))
    return Title(tid, title, type_, category, items)


ORDER_SHIPPED_TID = 855
APPOINTMENT_TID = 4127

TITLES = (
    _title(
        ORDER_SHIPPED_TID,
        "订单发货通知",
        ONE_TIME,
        SHOPPING,
        ("商品名称", "thing", "机械键盘"),
        ("发货时间", "time", "2019年10月1日 15:01"),
        ("订单编号", "character_string", "KHDD1912310002"),
        ("订单金额", "amount", "¥100.00"),
        ("订单状态", "phrase", "配送中"),
        ("快递公司", "thing", "顺丰速运"),
        ("快递单号", "character_string", "SF1234567890123"),
        ("收货人", "name", "张三"),
        ("联系电话", "phone_number", "400-811-1111"),
        ("备注", "thing", "请注意查收"),
    ),
    _title(
        1212,
        "付款成功通知",
        ONE_TIME,
        SHOPPING,
        ("订单号", "character_string", "20240105123456789"),
        ("付款金额", "amount", "128.50元"),
        ("付款时间", "time", "2024-01-05 12:30:45"),
        ("商品名称", "thing", "有机燕麦片 2袋装"),
        ("支付方式", "phrase", "微信支付"),
        ("商品数量", "number", "2"),
    ),
    _title(
        1451,
        "退款通知",
        ONE_TIME,
        SHOPPING,
        ("退款金额", "amount", "￥59.90"),
        ("退款原因", "thing", "商品与描述不符"),
        ("退款时间", "time", "2024年3月8日 10:20"),
        ("订单编号", "character_string", "TK20240308001"),
        ("退款状态", "phrase", "已退款"),
        ("退款方式", "thing", "原路退回"),
    ),
    _title(
        1738,
        "会员到期提醒",
        ONE_TIME,
        SHOPPING,
        ("会员等级", "thing", "黄金会员"),
        ("到期日期", "date", "2024年12月31日"),
        ("会员卡号", "character_string", "VIP-0086-2231"),
        ("剩余积分", "number", "1280"),
        ("温馨提示", "thing", "续费即可继续享受会员权益"),
        ("会员星级", "symbol", "★★★"),
        ("会员姓名", "name", "Li Lei"),
    ),
    _title(
        2034,
        "订单取消通知",
        ONE_TIME,
        SHOPPING,
        ("订单编号", "character_string", "KHDD1912310002"),
        ("取消原因", "thing", "超时未支付"),
        ("取消时间", "time", "2024-02-14 20:00"),
        ("订单金额", "amount", "¥36.00"),
    ),
    _title(
        2356,
        "物流状态更新",
        ONE_TIME,
        DELIVERY,
        ("运单号", "character_string", "YT9876543210"),
        ("物流状态", "phrase", "运输中"),
        ("当前位置", "thing", "广州白云转运中心"),
        ("更新时间", "time", "2024-05-20 08:15"),
        ("配送车辆", "car_number", "粤A12345"),
        ("快递员", "name", "王师傅"),
        ("快递员电话", "phone_number", "020-88886666"),
        ("预计送达", "date", "2024年5月21日"),
    ),
    _title(
        2571,
        "包裹签收提醒",
        ONE_TIME,
        DELIVERY,
        ("快递单号", "character_string", "JD0012345678"),
        ("签收时间", "time", "18:30"),
        ("签收人", "name", "李四"),
        ("取件码", "number", "305216"),
        ("取件地址", "thing", "菜鸟驿站(学府路店)"),
        ("货架区域", "letter", "B"),
    ),
    _title(
        3118,
        "课程开课提醒",
        LONG_TERM,
        EDUCATION,
        ("课程名称", "thing", "Python 入门第3课"),
        ("开课时间", "time", "2024年9月1日 19:00~20:30"),
        ("授课老师", "name", "陈老师"),
        ("上课地点", "thing", "线上直播间"),
        ("教室区域", "letter", "A"),
        ("课程编号", "character_string", "PY-101"),
    ),
    _title(
        3342,
        "作业批改通知",
        LONG_TERM,
        EDUCATION,
        ("作业名称", "thing", "第五单元练习"),
        ("批改结果", "phrase", "已批改"),
        ("得分", "number", "92.5"),
        ("评级", "symbol", "★★★★"),
        ("批改时间", "time", "2024-06-12 21:05"),
        ("批改老师", "name", "周老师"),
    ),
    _title(
        3590,
        "课程报名成功通知",
        ONE_TIME,
        EDUCATION,
        ("课程名称", "thing", "少儿围棋启蒙班"),
        ("报名人", "name", "刘小明"),
        ("报名费用", "amount", "¥1980"),
        ("开课日期", "date", "2024-07-15"),
        ("联系电话", "phone_number", "0755-12345678"),
        ("报名状态", "phrase", "报名成功"),
    ),
    _title(
        APPOINTMENT_TID,
        "预约成功通知",
        ONE_TIME,
        MEDICAL,
        ("预约项目", "thing", "体检套餐"),
        ("预约日期", "date", "2019年10月1日"),
        ("预约人", "name", "张三"),
        ("排队号码", "number", "339208499"),
        ("联系电话", "phone_number", "+86-0766-66888866"),
        ("预约地点", "thing", "市第一人民医院体检中心"),
        ("温馨提示", "thing", "请提前15分钟到达"),
    ),
    _title(
        4403,
        "就诊提醒",
        LONG_TERM,
        MEDICAL,
        ("就诊人", "name", "王芳"),
        ("就诊时间", "time", "2024年4月2日 09:30"),
        ("就诊科室", "thing", "心内科"),
        ("就诊号", "number", "27"),
        ("诊区", "letter", "C"),
        ("医生姓名", "name", "赵医生"),
    ),
    _title(
        4689,
        "检查报告出具通知",
        LONG_TERM,
        MEDICAL,
        ("检查项目", "thing", "血常规"),
        ("报告时间", "time", "2024-04-03 16:00"),
        ("患者姓名", "name", "王芳"),
        ("报告编号", "character_string", "RPT20240403-0017"),
        ("检查结果", "phrase", "未见异常"),
    ),
)

_BY_TID = {title.tid: title for title in TITLES}
CATEGORY_IDS = frozenset(category.id for category in CATEGORIES)


def title_of(tid: int) -> Title | None:
    return _BY_TID.get(tid)


def titles_in(category_ids: set[int]) -> list[Title]:
    """The titles of those categories, by tid."""
    return sorted((t for t in TITLES if t.category_id in category_ids), key=lambda t: t.tid)


def private_template(title: Title, kids: list[int]) -> Template:
    """A new private template of ``title`` with keywords ``kids`` in that order (all known to it).

    Content and example have the gettemplate layout of §5.6: one ``<name>:{{<key>.DATA}}\\n``
    line per keyword.
    """
    chosen = [keyword for keyword in (title.keyword(kid) for kid in kids) if keyword is not None]
    content = "".join(f"{k.name}:{{{{{k.key}.DATA}}}}\n" for k in chosen)
    example = "".join(f"{k.name}:{k.example}\n" for k in chosen)
    return Template(new_template_id(), title.title, content, example, title.type)
