"""Sample data for the synthetic returns: realistic figures, plausible species, fictitious people.

Figures follow domain-notes.md (Bukhara deer counts by state and site, each state's plausible
CAMI species); names, institutions and addresses are fictitious (``@example.org``). Sample data
for demonstrations, never expected results. Values are *stored* answers (choice values,
booleans, dates, texts by language), keyed by form and field key: the typist
(``mou.demo.typist``) turns them into what an officer types. Areas are commonly cited figures,
not checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

Translated = Mapping[str, str]  # a text by language code


def _site(
    site: Translated,
    protected_area: Translated | None,
    count: int,
    method: str,
    trend: str,
) -> dict[str, Any]:
    return {
        "site": site,
        "protected_area": protected_area,
        "count": count,
        "count_method": method,
        "trend": trend,
    }


def _area(name: Translated, category: Translated, area_ha: float | None) -> dict[str, Any]:
    return {"name": name, "category": category, "area_ha": area_ha, "deer_present": True}


_LABR = {
    "en": "Lower Amudarya State Biosphere Reserve",
    "ru": "Нижне-Амударьинский государственный биосферный резерват",
}
_KYZYLKUM = {"en": "Kyzylkum State Nature Reserve", "ru": "Кызылкумский государственный заповедник"}
_ZARAFSHAN = {
    "en": "Zarafshan National Nature Park",
    "ru": "Зарафшанский национальный природный парк",
}
_KHOREZM = {"en": "Khorezm National Nature Park", "ru": "Хорезмский национальный природный парк"}
_TIGROVAYA = {
    "en": "Tigrovaya Balka State Nature Reserve",
    "ru": "Государственный заповедник «Тигровая балка»",
}
_ILE_BALKHASH = {
    "en": "Ile-Balkhash State Nature Reserve",
    "ru": "Иле-Балхашский государственный природный резерват",
}
_AMUDARYA_TM = {
    "en": "Amudarya State Nature Reserve",
    "ru": "Амударьинский государственный заповедник",
}
_RESERVE = {"en": "State nature reserve", "ru": "Государственный заповедник"}
_NATIONAL_PARK = {"en": "National nature park", "ru": "Национальный природный парк"}

PROFILES: dict[tuple[str, str], dict[str, Any]] = {
    ("bukhara-deer", "UZ"): {
        # Spring 2023 census (eco.gov.uz); count years are set inside the cycle's period.
        "mou_signed": True,
        "mou_signature_date": dt.date(2002, 9, 18),
        "national_trend": "increasing",
        "population_sites": [
            _site(
                {"en": "Lower Amudarya", "ru": "Нижняя Амударья"},
                _LABR,
                1475,
                "ground_count",
                "increasing",
            ),
            _site(
                {"en": "Kyzylkum tugai", "ru": "Кызылкумские тугаи"},
                _KYZYLKUM,
                186,
                "ground_count",
                "stable",
            ),
            _site(
                {"en": "Zarafshan valley", "ru": "Долина Зарафшана"},
                _ZARAFSHAN,
                105,
                "ground_count",
                "increasing",
            ),
            _site(
                {"en": "Khorezm (reintroduced group)", "ru": "Хорезм (реинтродуцированная группа)"},
                _KHOREZM,
                10,
                "ground_count",
                "increasing",
            ),
        ],
        "protected_areas": [
            _area(
                _LABR,
                {
                    "en": "State biosphere reserve; UNESCO biosphere reserve",
                    "ru": "Государственный биосферный резерват; биосферный резерват ЮНЕСКО",
                },
                68717.8,
            ),
            _area(_KYZYLKUM, _RESERVE, None),
            _area(_ZARAFSHAN, _NATIONAL_PARK, None),
            _area(_KHOREZM, _NATIONAL_PARK, None),
        ],
        "population_notes": {
            "en": "Spring census by the staff of the protected areas. The Khorezm group was "
            "founded by translocation from the Lower Amudarya reserve.",
            "ru": "Весенний учет силами сотрудников ООПТ. Хорезмская группа создана путем "
            "переселения оленей из Нижне-Амударьинского резервата.",
        },
    },
    ("bukhara-deer", "TJ"): {
        # Tigrovaya Balka: over 200 (2021, mfa.tj).
        "mou_signed": True,
        "mou_signature_date": dt.date(2002, 5, 16),
        "national_trend": "stable",
        "population_sites": [
            _site(
                {"en": "Tigrovaya Balka", "ru": "Тигровая балка"},
                _TIGROVAYA,
                215,
                "ground_count",
                "stable",
            ),
        ],
        "protected_areas": [_area(_TIGROVAYA, _RESERVE, 49786.0)],
        "population_notes": {
            "en": "Count along the Vakhsh and Panj floodplain by reserve rangers.",
            "ru": "Учет в пойме Вахша и Пянджа силами инспекторов заповедника.",
        },
    },
    ("bukhara-deer", "KZ"): {
        # Karachingil about 350 (recent); Ile-Balkhash: 5 released in December 2018.
        "mou_signed": True,
        "mou_signature_date": dt.date(2002, 5, 16),
        "national_trend": "increasing",
        "population_sites": [
            _site(
                {"en": "Karachingil (Ile River valley)", "ru": "Карачингиль (долина реки Или)"},
                {"en": "Karachingil hunting area", "ru": "Охотничье хозяйство «Карачингиль»"},
                350,
                "ground_count",
                "increasing",
            ),
            _site(
                {"en": "Ile River delta (release site)", "ru": "Дельта реки Или (место выпуска)"},
                _ILE_BALKHASH,
                14,
                "camera_trap",
                "increasing",
            ),
        ],
        "protected_areas": [
            _area(
                _ILE_BALKHASH,
                {
                    "en": "State nature reserve (rezervat)",
                    "ru": "Государственный природный резерват",
                },
                None,
            ),
        ],
        "population_notes": {
            "en": "Ile-Balkhash: 5 deer released from Karachingil in December 2018; further "
            "releases are planned, the target is 200-250 animals.",
            "ru": "Иле-Балхаш: в декабре 2018 г. выпущено 5 оленей из Карачингиля; "
            "планируются новые выпуски, цель — 200–250 особей.",
        },
    },
    ("bukhara-deer", "TM"): {
        # No published recent figure: a plausible small number, marked as an estimate.
        "mou_signed": True,
        "mou_signature_date": dt.date(2002, 5, 16),
        "national_trend": "unknown",
        "population_sites": [
            _site(
                {"en": "Amudarya River valley", "ru": "Долина Амударьи"},
                _AMUDARYA_TM,
                60,
                "expert_estimate",
                "unknown",
            ),
        ],
        "protected_areas": [_area(_AMUDARYA_TM, _RESERVE, None)],
        "population_notes": {
            "en": "The figure for the Amudarya reserve is an expert estimate; no full count "
            "was made during the reporting period.",
            "ru": "Численность в Амударьинском заповеднике — экспертная оценка; полный учет "
            "в отчетном периоде не проводился.",
        },
    },
    ("bukhara-deer", "AF"): {
        # About 120 in the 1970s; presence re-confirmed in Darqad in 2013 (WCS).
        "mou_signed": False,
        "national_trend": "unknown",
        "population_sites": [
            _site(
                {"en": "Darqad (Amu Darya floodplain, Takhar)", "ru": "Даркад (пойма Амударьи)"},
                None,
                20,
                "expert_estimate",
                "unknown",
            ),
        ],
        "population_notes": {
            "en": "Presence re-confirmed in Darqad in 2013; the figure is an expert estimate "
            "from field signs and interviews, not a count.",
            "ru": "Присутствие подтверждено в Даркаде в 2013 г.; численность — экспертная "
            "оценка по следам жизнедеятельности и опросам, а не учет.",
        },
    },
}

# A total field and the table column it sums, as a ministry computes it.
TOTALS: dict[str, tuple[str, str]] = {"national_total": ("population_sites", "count")}

# Plausible CAMI species per range state (judgement from the species' known ranges).
STATE_SPECIES: dict[str, tuple[str, ...]] = {
    "AF": ("snow-leopard", "argali", "bukhara-deer", "goitered-gazelle"),
    "BT": ("snow-leopard",),
    "CN": (
        "snow-leopard",
        "wild-yak",
        "tibetan-antelope",
        "tibetan-gazelle",
        "kiang",
        "bactrian-camel",
        "argali",
        "mongolian-gazelle",
        "goitered-gazelle",
        "asiatic-wild-ass",
        "przewalskis-horse",
    ),
    "IN": ("snow-leopard", "kiang", "tibetan-antelope", "wild-yak", "chinkara", "argali"),
    "IR": ("cheetah", "goitered-gazelle", "chinkara", "asiatic-wild-ass"),
    "KZ": (
        "saiga",
        "snow-leopard",
        "argali",
        "goitered-gazelle",
        "asiatic-wild-ass",
        "bukhara-deer",
        "przewalskis-horse",
    ),
    "KG": ("snow-leopard", "argali"),
    "MN": (
        "snow-leopard",
        "argali",
        "mongolian-gazelle",
        "goitered-gazelle",
        "asiatic-wild-ass",
        "bactrian-camel",
        "przewalskis-horse",
        "saiga",
    ),
    "NP": ("snow-leopard", "kiang", "tibetan-gazelle", "argali"),
    "PK": ("snow-leopard", "argali", "chinkara", "goitered-gazelle"),
    "RU": ("saiga", "snow-leopard", "argali", "mongolian-gazelle"),
    "TJ": ("snow-leopard", "argali", "bukhara-deer", "goitered-gazelle"),
    "TM": ("bukhara-deer", "asiatic-wild-ass", "goitered-gazelle", "saiga"),
    "UZ": ("saiga", "bukhara-deer", "goitered-gazelle", "asiatic-wild-ass", "argali"),
}

# Fictitious people: (Latin, Cyrillic) names per state.
PEOPLE: dict[str, tuple[tuple[str, str], ...]] = {
    "AF": (("Ahmad Wali Noori", "Ахмад Вали Нури"), ("Zarmina Sadat", "Зармина Садат")),
    "BT": (("Tshering Dorji", "Церинг Дорджи"), ("Pema Choden", "Пема Чоден")),
    "CN": (("Wang Lei", "Ван Лэй"), ("Zhao Min", "Чжао Минь"), ("Liu Yang", "Лю Ян")),
    "IN": (("Kavita Rao", "Кавита Рао"), ("Arun Menon", "Арун Менон")),
    "IR": (("Mehdi Rostami", "Мехди Ростами"), ("Leila Farahani", "Лейла Фарахани")),
    "KZ": (("Askar Zhunusov", "Аскар Жунусов"), ("Gulnara Bekova", "Гульнара Бекова")),
    "KG": (("Bakyt Osmonov", "Бакыт Осмонов"), ("Aizada Isakova", "Айзада Исакова")),
    "MN": (("Oyun Ganbaatar", "Оюун Ганбаатар"), ("Tumur Dashdorj", "Тумур Дашдорж")),
    "NP": (("Bikash Thapa", "Бикаш Тхапа"), ("Sunita Rai", "Сунита Раи")),
    "PK": (("Ayesha Siddiqui", "Аиша Сиддики"), ("Farhan Qureshi", "Фархан Куреши")),
    "RU": (("Sergey Volkov", "Сергей Волков"), ("Irina Sokolova", "Ирина Соколова")),
    "TJ": (("Farrukh Nazarov", "Фаррух Назаров"), ("Malika Saidova", "Малика Саидова")),
    "TM": (("Merdan Atayev", "Мердан Атаев"), ("Ogulgerek Annayeva", "Огулгерек Аннаева")),
    "UZ": (("Dilshod Rakhimov", "Дилшод Рахимов"), ("Nodira Yusupova", "Нодира Юсупова")),
}
DEFAULT_PEOPLE = (("Alex Morgan", "Алекс Морган"), ("Sam Taylor", "Сэм Тейлор"))

INSTITUTION: Translated = {
    "en": "Department of Wildlife and Protected Areas",
    "ru": "Управление по охране животного мира и особо охраняемым природным территориям",
    "fr": "Direction de la faune et des aires protégées",
}
POSITIONS: tuple[Translated, ...] = (
    {
        "en": "Head of the Wildlife Division",
        "ru": "Начальник отдела охраны животного мира",
        "fr": "Chef de la division de la faune",
    },
    {"en": "Chief specialist", "ru": "Главный специалист", "fr": "Spécialiste principal"},
)
