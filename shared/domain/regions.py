"""Where a member lives, as the regions and city tiers shops target: data, and the lookup that reads free text.

Profiles carry provinces and cities as typed by people and upstream systems ("广东省",
"Guangdong", "guangdong province"), so names are folded (case, spaces, administrative
suffixes) before they are looked up; a name not found has no region rather than a guess.
"""

from __future__ import annotations

import re
from functools import lru_cache

# China's seven geographic regions, and Hong Kong, Macao and Taiwan, by province (Chinese and pinyin).
_REGIONS: dict[str, tuple[str, ...]] = {
    "north_china": (
        "北京", "beijing", "天津", "tianjin", "河北", "hebei", "山西", "shanxi",
        "内蒙古", "neimenggu", "inner mongolia",
    ),
    "northeast": ("辽宁", "liaoning", "吉林", "jilin", "黑龙江", "heilongjiang"),
    "east_china": (
        "上海", "shanghai", "江苏", "jiangsu", "浙江", "zhejiang", "安徽", "anhui",
        "福建", "fujian", "江西", "jiangxi", "山东", "shandong",
    ),
    "central_china": ("河南", "henan", "湖北", "hubei", "湖南", "hunan"),
    "south_china": ("广东", "guangdong", "广西", "guangxi", "海南", "hainan"),
    "southwest": (
        "重庆", "chongqing", "四川", "sichuan", "贵州", "guizhou", "云南", "yunnan", "西藏", "xizang", "tibet",
    ),
    "northwest": ("陕西", "shaanxi", "甘肃", "gansu", "青海", "qinghai", "宁夏", "ningxia", "新疆", "xinjiang"),
    "hk_macao_taiwan": ("香港", "hong kong", "hongkong", "澳门", "macao", "macau", "台湾", "taiwan"),
}  # fmt: skip
REGIONS = tuple(_REGIONS)

FIRST_TIER_CITIES = frozenset({"北京", "beijing", "上海", "shanghai", "广州", "guangzhou", "深圳", "shenzhen"})
NEW_FIRST_TIER_CITIES = frozenset(
    {
        "成都", "chengdu", "杭州", "hangzhou", "重庆", "chongqing", "苏州", "suzhou", "武汉", "wuhan",
        "西安", "xian", "xi'an", "南京", "nanjing", "长沙", "changsha", "天津", "tianjin", "郑州", "zhengzhou",
        "东莞", "dongguan", "无锡", "wuxi", "宁波", "ningbo", "青岛", "qingdao", "合肥", "hefei",
    }
)  # fmt: skip

_REGION_OF = {name: region for region, names in _REGIONS.items() for name in names}
# Administrative suffixes, longest first, so "广西壮族自治区" folds to "广西".
_SUFFIXES = re.compile(
    r"(壮族自治区|回族自治区|维吾尔自治区|特别行政区|自治区|省|市"
    r"|(\s+(zhuang|hui|uygur|uyghur))?\s+autonomous region"
    r"|\s+(province|city|shi|sheng|sar|municipality))$"
)


def fold_place(name: str) -> str:
    """A place name reduced to the form the tables above use."""
    folded = " ".join(name.strip().lower().replace("\u2019", "'").split())  # a typographic apostrophe too
    return _SUFFIXES.sub("", folded).strip()


@lru_cache(maxsize=4096)
def region_of(province: str | None) -> str | None:
    return _REGION_OF.get(fold_place(province)) if province else None


@lru_cache(maxsize=4096)
def city_tier(city: str | None) -> int | None:
    """1 for the first-tier cities, 2 for the new first tier, None otherwise."""
    if not city:
        return None
    folded = fold_place(city)
    if folded in FIRST_TIER_CITIES:
        return 1
    return 2 if folded in NEW_FIRST_TIER_CITIES else None
