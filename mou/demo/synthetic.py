"""Synthetic filled returns: what a ministry officer would type into a template.

Driven by the form specification only: every field is answered from its type, choices and
bounds; the few realistic figures (Bukhara deer counts from domain-notes.md, each state's
plausible CAMI species) and the sample texts are data tables keyed by field key, not code
paths. Answers are *typed* values: choice labels in the template's language, "Yes"/"Да" for
booleans, datetimes for dates, numbers as numbers. Names, institutions and addresses are
fictitious (``@example.org``).

Answer shapes (as ``fill_workbook`` takes them): a scalar is ``{key: value}``; a free table is
``{key: [{column: value}, ...]}``; a table whose rows come from a list (``row_source``) is
``{key: {row_key: {column: value}}}`` keyed by activity code or choice value.
"""

from __future__ import annotations

import datetime as dt
import io
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl import load_workbook
from openpyxl.utils.cell import range_boundaries

from mou.forms.spec import FieldSpec, FormSpec
from mou.i18n.languages import pick
from mou.settings import Settings
from mou.workbook.layout import ROW_KEY_COLUMNS

Answers = dict[str, Any]
Translated = Mapping[str, str]
# (code, names by language) or the catalogue's (code, names, scientific name).
SpeciesEntry = tuple[Any, ...]

YES: Translated = {"en": "Yes", "ru": "Да", "fr": "Oui"}
NO: Translated = {"en": "No", "ru": "Нет", "fr": "Non"}

# --------------------------------------------------------------------------------------------
# Realistic figures (domain-notes.md). Sample data for demonstrations, never expected results.
# Values are *stored* answers (choice values, booleans, dates, texts by language); the typist
# turns them into what an officer types. Areas are commonly cited figures, not checked.
# --------------------------------------------------------------------------------------------


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

# Sample texts by "table.column" or field key, by language ("*": any language). Placeholders:
# {institution} {person} {position} {email} {state} {row_person} {row_position} {row_email}
# {row_species}.
TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    "reporting_institution": {"*": ("{institution}",)},
    "focal_point_name": {"*": ("{person}",)},
    "national_focal_point_name": {"*": ("{person}",)},
    "focal_point_position": {"*": ("{position}",)},
    "focal_point_email": {"*": ("{email}",)},
    "national_focal_point_email": {"*": ("{email}",)},
    "national_coordinator": {"*": ("{person}, {position}, {institution}",)},
    "cites_authority": {"*": ("{institution} ({email})",)},
    "focal_points.name": {"*": ("{row_person}",)},
    "focal_points.institution": {"*": ("{row_position}, {institution}",)},
    "focal_points.email": {"*": ("{row_email}",)},
    "other_agencies": {
        "en": (
            "Administrations of the protected areas concerned; Institute of Zoology of the "
            "Academy of Sciences; State forestry service.",
            "Protected area administrations; national university (biology faculty); "
            "a national non-governmental organisation for nature conservation.",
        ),
        "ru": (
            "Администрации соответствующих ООПТ; Институт зоологии Академии наук; "
            "государственная лесная служба.",
            "Администрации особо охраняемых природных территорий; биологический факультет "
            "национального университета; национальная природоохранная НПО.",
        ),
    },
    "recording_system": {
        "en": (
            "Annual spring counts by protected area staff along fixed routes, checked by the "
            "Institute of Zoology; results are kept in the ministry's biodiversity database.",
        ),
        "ru": (
            "Ежегодный весенний учет силами сотрудников ООПТ по постоянным маршрутам с "
            "проверкой Институтом зоологии; результаты хранятся в базе данных министерства.",
        ),
    },
    "population_notes": {
        "en": ("Counts by protected area staff; see the table for the methods.",),
        "ru": ("Учеты проведены сотрудниками ООПТ; методы указаны в таблице.",),
    },
    "threats.measures": {
        "en": (
            "Joint ranger patrols with the police; fines raised.",
            "Tugai plots fenced and replanted with local species.",
            "Agreement with the water authority on environmental flows in spring.",
            "Grazing banned inside the reserve; buffer zone marked.",
            "Fire breaks maintained; volunteer fire teams trained.",
            "Monitoring continued; no specific measures were needed.",
        ),
        "ru": (
            "Совместные рейды инспекторов и полиции; штрафы увеличены.",
            "Участки тугаев огорожены и засажены местными видами.",
            "Соглашение с водохозяйственной организацией о весенних экологических попусках.",
            "Выпас в заповеднике запрещен; граница охранной зоны обозначена.",
            "Поддерживаются противопожарные полосы; обучены добровольные пожарные команды.",
            "Мониторинг продолжен; специальные меры не потребовались.",
        ),
    },
    "action_plan_implementation.narrative": {
        "en": (
            "Translocation of a small group to a restored tugai site was prepared and carried out.",
            "A new protected area section along the river was designated.",
            "Penalties for illegal killing of the species were raised.",
            "Data on counts were exchanged with neighbouring range states.",
            "Annual counts continued; a camera-trap survey was added.",
            "School visits and a poster campaign in villages near the reserve.",
        ),
        "ru": (
            "Подготовлено и проведено переселение небольшой группы на восстановленный участок "
            "тугаев.",
            "Создан новый участок ООПТ вдоль реки.",
            "Ужесточена ответственность за незаконную добычу вида.",
            "Проведен обмен данными учетов с соседними государствами ареала.",
            "Продолжены ежегодные учеты; добавлен учет с помощью фотоловушек.",
            "Занятия в школах и плакатная кампания в поселках рядом с заповедником.",
        ),
    },
    "legislation": {
        "en": (
            "The species is listed in the national Red Data Book; hunting is prohibited. "
            "Penalties for illegal killing were revised during the period.",
        ),
        "ru": (
            "Вид занесен в национальную Красную книгу; охота запрещена. В отчетном периоде "
            "пересмотрены штрафы за незаконную добычу.",
        ),
    },
    "bilateral_agreements": {
        "en": ("Memorandum on cooperation in protected areas with a neighbouring range state.",),
        "ru": ("Меморандум о сотрудничестве в области ООПТ с соседним государством ареала.",),
    },
    "international_cooperation": {
        "en": (
            "Participation in the CAMI range state meeting; exchange of count data with "
            "neighbouring countries; joint training of rangers.",
        ),
        "ru": (
            "Участие в совещании государств ареала CAMI; обмен данными учетов с соседними "
            "странами; совместное обучение инспекторов.",
        ),
    },
    "national_plan_activities": {
        "en": (
            "A national action plan for 2026-2035 is being prepared: habitat restoration, "
            "reintroduction to two sites, annual counts, awareness work.",
        ),
        "ru": (
            "Готовится национальный план действий на 2026–2035 гг.: восстановление "
            "местообитаний, реинтродукция на два участка, ежегодные учеты, просвещение.",
        ),
    },
    "proposal": {
        "en": (
            "Add a transboundary count along the Amu Darya to the Action Plan.",
            "Set common census methods for all range states.",
        ),
        "ru": (
            "Включить в План действий трансграничный учет вдоль Амударьи.",
            "Установить единые методы учета для всех государств ареала.",
        ),
    },
    "rationale": {
        "en": ("Deer cross the border; national counts cannot be compared today.",),
        "ru": ("Олени пересекают границу; сегодня национальные учеты несопоставимы.",),
    },
    "activities.narrative": {
        "en": (
            "Ranger patrols and monitoring of {row_species}; results shared with CAMI.",
            "Field survey of {row_species} with the Academy of Sciences; report in preparation.",
            "Awareness events in villages near key habitats of {row_species}.",
            "Draft regulation prepared; consultation with the ministries concerned.",
            "Training of customs and border staff on the illegal trade in {row_species}.",
        ),
        "ru": (
            "Рейды инспекторов и мониторинг ({row_species}); результаты переданы в CAMI.",
            "Полевое обследование ({row_species}) совместно с Академией наук; отчет готовится.",
            "Просветительские мероприятия в селах у ключевых местообитаний ({row_species}).",
            "Подготовлен проект постановления; идет согласование с министерствами.",
            "Обучение таможенников и пограничников по незаконной торговле ({row_species}).",
        ),
        "fr": (
            "Patrouilles et suivi ({row_species}) ; résultats transmis à la CAMI.",
            "Inventaire de terrain ({row_species}) avec l'Académie des sciences ; rapport en "
            "préparation.",
            "Actions de sensibilisation dans les villages proches des habitats ({row_species}).",
        ),
    },
    "general_comments": {
        "en": (
            "Synthetic return made for a demonstration of the reporting service: figures "
            "follow published counts; names and addresses are fictitious.",
        ),
        "ru": (
            "Синтетический отчет для демонстрации сервиса отчетности: численность по "
            "опубликованным учетам, имена и адреса вымышлены.",
        ),
        "fr": (
            "Rapport synthétique produit pour une démonstration du service : effectifs "
            "d'après les comptages publiés ; noms et adresses fictifs.",
        ),
    },
}
FALLBACK_TEXT: Translated = {
    "en": "Information from the national authorities.",
    "ru": "Сведения национальных органов.",
    "fr": "Informations des autorités nationales.",
}

# How likely an optional answer is given, and how often each choice is picked: officers skip
# some optional cells, and most activities are under way rather than finished.
OPTIONAL_SHARE = 0.85
ROW_SHARE: dict[str, float] = {"@activities": 0.4}  # share of listed rows reported on
# Optional answers given more or less often than OPTIONAL_SHARE ("table.column" or key):
# officers always give their contact; they explain only some activities.
ANSWER_SHARE: dict[str, float] = {
    "focal_point_name": 1.0,
    "focal_point_email": 1.0,
    "national_focal_point_name": 1.0,
    "national_focal_point_email": 1.0,
    "activities.narrative": 0.3,
}
CHOICE_WEIGHTS: dict[str, dict[str, int]] = {
    "activity_status": {
        "in_progress": 4,
        "ongoing": 4,
        "completed": 2,
        "not_started": 1,
        "not_applicable": 1,
    },
    "severity": {"none": 1, "low": 3, "medium": 3, "high": 2, "unknown": 1},
    "trend": {"increasing": 3, "stable": 3, "decreasing": 1, "fluctuating": 1, "unknown": 1},
}
# A row with one of these answers needs nothing more (no narrative for "not applicable").
QUIET_VALUES = frozenset({"not_applicable", "not_started", "none"})
# What officers type when they have no figure (an error in a number cell).
NO_FIGURE: Translated = {"en": "no data", "ru": "нет данных", "fr": "pas de données"}
NO_DATE: Translated = {"en": "to be confirmed", "ru": "уточняется", "fr": "à confirmer"}
OFF_LIST: Translated = {"en": "partly", "ru": "частично", "fr": "en partie"}


def _text_in(text: Translated | str | None, language: str) -> str | None:
    # Sample values are plain strings or translated texts.
    if text is None or isinstance(text, str):
        return text
    return pick(text, language)


def _email(latin_name: str) -> str:
    parts = latin_name.lower().replace("'", "").split()
    return f"{parts[0][0]}.{parts[-1]}@example.org"


@dataclass
class _Typist:
    """Answers one form as an officer of one state would type them."""

    form: FormSpec
    state: str
    language: str
    rng: random.Random
    species: dict[str, str]  # code -> label in the language, every species of the instrument
    plausible: list[str]  # the state's species codes
    activities: list[str]
    period_end: dt.date
    submitted: dt.date
    profile: Mapping[str, Any]
    words: dict[str, str] = field(default_factory=dict)

    def person(self, index: int) -> tuple[str, str]:
        """(name as typed, email) of the state's index-th fictitious person."""
        people = PEOPLE.get(self.state, DEFAULT_PEOPLE)
        latin, cyrillic = people[index % len(people)]
        return (cyrillic if self.language == "ru" else latin), _email(latin)

    def setup(self, state_name: str) -> None:
        name, email = self.person(0)
        self.words = {
            "institution": _text_in(INSTITUTION, self.language) or "",
            "person": name,
            "email": email,
            "position": _text_in(POSITIONS[0], self.language) or "",
            "state": state_name,
        }

    # -- choices -------------------------------------------------------------------------
    def options(self, ref: str) -> list[tuple[str, str]]:
        if ref == "@species":
            return list(self.species.items())
        if ref == "@activities":
            return [(code, code) for code in self.activities]
        return [(c.value, c.label(self.language)) for c in self.form.choices[ref]]

    def label(self, ref: str, value: str) -> str:
        return dict(self.options(ref))[value]

    def choose(self, ref: str) -> str:
        """A stored choice value, weighted where the data says how officers answer."""
        if ref == "@species":
            return self.rng.choice(self.plausible)
        values = [value for value, _ in self.options(ref)]
        weights = CHOICE_WEIGHTS.get(ref)
        if weights:
            return self.rng.choices(values, [weights.get(v, 1) for v in values])[0]
        return self.rng.choice(values)

    # -- values --------------------------------------------------------------------------
    def bound(self, value: Any) -> Any:
        if value == "period_end":
            return self.period_end.year
        if value == "period_start":
            return self.period_end.year - 1
        return value

    def typed(self, spec: FieldSpec, stored: Any) -> Any:
        """A stored answer as the officer types it in the template's language."""
        if stored is None:
            return None
        if spec.type == "boolean":
            return _text_in(YES if stored else NO, self.language)
        if spec.type == "choice":
            return self.label(spec.choices or "", stored)
        if spec.type == "multi_choice":
            return "; ".join(self.label(spec.choices or "", v) for v in stored)
        if spec.type == "date":
            day = stored if isinstance(stored, dt.date) else dt.date.fromisoformat(stored)
            return dt.datetime(day.year, day.month, day.day)
        if spec.type == "text":
            return self.clip(spec, _text_in(stored, self.language) or "")
        return stored

    def clip(self, spec: FieldSpec, text: str) -> str:
        # Never begin with a formula character: LibreOffice would make it a live formula.
        text = text.lstrip("=+-@ ")
        return text[: spec.max_length] if spec.max_length else text

    def text(self, spec: FieldSpec, table: str | None, row: Mapping[str, str]) -> str:
        keys = ([f"{table}.{spec.key}"] if table else []) + [spec.key]
        for key in keys:
            if key in TEXTS:
                samples = TEXTS[key]
                options = samples.get(self.language) or samples.get("*") or samples["en"]
                return self.clip(spec, self.rng.choice(options).format(**self.words, **row))
        return self.clip(spec, _text_in(FALLBACK_TEXT, self.language) or "")

    def generate(self, spec: FieldSpec, table: str | None, row: dict[str, str]) -> Any:
        """A stored value for a field or column that the profile does not give."""
        low, high = self.bound(spec.min), self.bound(spec.max)
        if spec.type == "text":
            return self.text(spec, table, row)
        if spec.type == "integer":
            low = 0 if low is None else low
            return self.rng.randint(low, max(low, min(high if high is not None else 100, 100)))
        if spec.type == "decimal":
            low = 0 if low is None else low
            top = min(high if high is not None else 1000.0, 1000.0)
            return round(self.rng.uniform(low, max(low, top)), 1)
        if spec.type == "year":
            last = self.period_end.year if high is None else min(high, self.period_end.year)
            first = max(low if low is not None else last - 1, last - 1)
            return self.rng.randint(min(first, last), last)
        if spec.type == "date":
            return self.submitted
        if spec.type == "boolean":
            return self.rng.random() < 0.7
        if spec.type == "choice":
            return self.choose(spec.choices or "")
        if spec.type == "multi_choice":
            ref = spec.choices or ""
            pool = self.plausible if ref == "@species" else [v for v, _ in self.options(ref)]
            chosen = self.rng.sample(pool, k=min(len(pool), self.rng.randint(1, 2)))
            if ref == "@species":
                row["row_species"] = ", ".join(self.species[c] for c in chosen)
            return chosen
        raise ValueError(f"{spec.key}: no synthetic value for type {spec.type}")

    def wanted(self, spec: FieldSpec, table: str | None = None) -> bool:
        share = ANSWER_SHARE.get(f"{table}.{spec.key}", ANSWER_SHARE.get(spec.key, OPTIONAL_SHARE))
        return spec.required or self.rng.random() < share

    # -- fields and tables ---------------------------------------------------------------
    def answers(self) -> Answers:
        answers: Answers = {}
        for spec in self.form.fields:
            if spec.key in TOTALS:
                continue  # computed from its table below, as an officer would
            if spec.is_table:
                table = self.keyed_table(spec) if spec.row_source else self.free_table(spec)
                if table:
                    answers[spec.key] = table
                continue
            if spec.key in self.profile:
                stored = self.profile[spec.key]
            elif spec.type == "date":
                # The required date is the submission's; others (a signature) are facts that
                # only the profile knows.
                stored = self.submitted if spec.required else None
            elif self.wanted(spec):
                stored = self.generate(spec, None, {})
            else:
                stored = None
            value = self.typed(spec, stored)
            if value is not None:
                answers[spec.key] = value
        for key, (table, column) in TOTALS.items():
            rows = answers.get(table)
            if key in {f.key for f in self.form.fields} and isinstance(rows, list):
                answers[key] = sum(r[column] for r in rows if isinstance(r.get(column), int))
        return answers

    def row(self, spec: FieldSpec, given: Mapping[str, Any], species: str | None) -> dict[str, Any]:
        """One table row: given values first, generated ones for the other columns."""
        index = self.rng.randrange(8)
        name, email = self.person(index)
        words = {
            "row_person": name,
            "row_email": email,
            "row_position": _text_in(POSITIONS[index % len(POSITIONS)], self.language) or "",
            "row_species": ", ".join(self.species[c] for c in self.plausible[:1]),
        }
        cells: dict[str, Any] = {}
        quiet = False
        for column in spec.columns:
            if column.key in given:
                stored = given[column.key]
            elif species and column.choices == "@species" and column.type == "choice":
                stored = species
            elif quiet and not column.required:
                continue
            elif self.wanted(column, spec.key):
                stored = self.generate(column, spec.key, words)
            else:
                continue
            if column.type == "choice" and stored in QUIET_VALUES:
                quiet = True
            value = self.typed(column, stored)
            if value is not None:
                cells[column.key] = value
        return cells

    def free_table(self, spec: FieldSpec) -> list[dict[str, Any]]:
        limit = spec.rows or 1
        given = self.profile.get(spec.key)
        if given is not None:
            rows = [self.row(spec, r, None) for r in given[:limit]]
        elif any(c.required and c.choices == "@species" for c in spec.columns):
            rows = [self.row(spec, {}, code) for code in self.plausible[:limit]]
        elif spec.required or self.rng.random() < 0.5:
            rows = [self.row(spec, {}, None) for _ in range(self.rng.randint(1, min(2, limit)))]
        else:
            rows = []
        return rows

    def keyed_table(self, spec: FieldSpec) -> dict[str, dict[str, Any]]:
        source = spec.row_source or ""
        keys = [value for value, _ in self.options(source)]
        share = ROW_SHARE.get(source, 1.0)
        chosen = [k for k in keys if self.rng.random() < share] or keys[:1]
        return {key: self.row(spec, {}, None) for key in chosen}


def synthetic_answers(
    form: FormSpec,
    state_code: str,
    language: str,
    rng: random.Random,
    *,
    species: Sequence[SpeciesEntry],
    activities: Sequence[str],
    period_end: dt.date,
    submitted: dt.date | None = None,
    state_name: str | None = None,
) -> Answers:
    """A complete, valid return for one state, typed as an officer would in ``language``.

    ``species``: the instrument's species as (code, names by language[, scientific name]);
    ``activities``: the activity codes of the programme of work; ``submitted``: the date typed
    as the submission date (default: the period's end, or today if that is later than today).
    """
    names = {entry[0]: (_text_in(entry[1], language)) for entry in species}
    plausible = [c for c in STATE_SPECIES.get(state_code, ()) if c in names] or list(names)
    typist = _Typist(
        form=form,
        state=state_code,
        language=language,
        rng=rng,
        species=names,
        plausible=plausible,
        activities=list(activities),
        period_end=period_end,
        submitted=submitted or min(period_end, dt.date.today()),
        profile=PROFILES.get((form.instrument, state_code), {}),
    )
    typist.setup(state_name or state_code)
    return typist.answers()


# --------------------------------------------------------------------------------------------
# Typical errors
# --------------------------------------------------------------------------------------------


def with_errors(
    form: FormSpec, answers: Mapping[str, Any], language: str, count: int = 2
) -> tuple[Answers, list[str]]:
    """A copy of ``answers`` with up to ``count`` typical errors; (answers, issue codes).

    In order of preference: words in a number cell ("нет данных": ``not_integer``), an
    impossible year (2125 for 2025: ``above_max``), words in a date cell (``not_date``),
    a value off the dropdown list (``unknown_choice``).
    """
    changed: Answers = {
        key: (
            [dict(r) for r in value]
            if isinstance(value, list)
            else {k: dict(v) for k, v in value.items()}
            if isinstance(value, dict)
            else value
        )
        for key, value in answers.items()
    }
    codes: list[str] = []

    def cells() -> list[tuple[FieldSpec, dict[str, Any], str]]:
        """(spec, holder, key) of every answered cell, table cells first."""
        found = []
        for spec in form.fields:
            value = changed.get(spec.key)
            if spec.is_table and value:
                rows = value if isinstance(value, list) else list(value.values())
                columns = {c.key: c for c in spec.columns}
                found += [(columns[k], r, k) for r in rows for k in r if k in columns]
        for spec in form.fields:
            if not spec.is_table and spec.key in changed:
                found.append((spec, changed, spec.key))
        return found

    def number(spec: FieldSpec, holder: dict[str, Any], key: str) -> str | None:
        if spec.type != "integer" or not isinstance(holder[key], int):
            return None
        holder[key] = _text_in(NO_FIGURE, language)
        return "not_integer"

    def year(spec: FieldSpec, holder: dict[str, Any], key: str) -> str | None:
        if spec.type != "year" or spec.max is None or not isinstance(holder[key], int):
            return None
        if isinstance(spec.max, int) and holder[key] + 100 <= spec.max:
            return None
        holder[key] += 100  # 2125 for 2025: one finger on the wrong key
        return "above_max"

    def date(spec: FieldSpec, holder: dict[str, Any], key: str) -> str | None:
        if spec.type != "date":
            return None
        holder[key] = _text_in(NO_DATE, language)
        return "not_date"

    def choice(spec: FieldSpec, holder: dict[str, Any], key: str) -> str | None:
        if spec.type != "choice":
            return None
        holder[key] = _text_in(OFF_LIST, language)
        return "unknown_choice"

    for kind in (number, year, date, choice):
        if len(codes) >= count:
            break
        for spec, holder, key in cells():
            code = kind(spec, holder, key)
            if code:
                codes.append(code)
                break
    return changed, codes


# --------------------------------------------------------------------------------------------
# Filling a template
# --------------------------------------------------------------------------------------------


def _destination(wb: Any, key: str) -> tuple[Any, int, int, int, int]:
    """(worksheet, min_col, min_row, max_col, max_row) of a workbook-level defined name."""
    defined = wb.defined_names.get(key)
    if defined is None:
        raise ValueError(f"the template has no defined name {key!r}")
    destinations = list(defined.destinations)
    if len(destinations) != 1:
        raise ValueError(f"defined name {key!r} does not point at one range")
    sheet, ref = destinations[0]
    min_col, min_row, max_col, max_row = range_boundaries(ref.replace("$", ""))
    return wb[sheet], min_col, min_row, max_col or min_col, max_row or min_row


def _cell_value(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return dt.datetime(value.year, value.month, value.day)
    return value


def _row_code(form: FormSpec, spec: FieldSpec, row_key: str) -> str:
    """What the template shows in a listed row's code column (the reader's row key)."""
    if spec.row_source == "@activities":
        return row_key
    values = [c.value for c in form.choices[spec.row_source or ""]]
    if row_key not in values:
        raise ValueError(f"{spec.key}: {row_key!r} is not a row of {spec.row_source}")
    return str(values.index(row_key) + 1)


def fill_workbook(template: bytes, form: FormSpec, answers: Mapping[str, Any]) -> bytes:
    """The template with ``answers`` typed into the cells their defined names point at."""
    wb = load_workbook(io.BytesIO(template))
    specs = {spec.key: spec for spec in form.fields}
    unknown = sorted(set(answers) - set(specs))
    if unknown:
        raise ValueError(f"no such fields in {form.form_id}: {', '.join(unknown)}")
    for key, value in answers.items():
        spec = specs[key]
        ws, min_col, min_row, _, max_row = _destination(wb, key)
        if not spec.is_table:
            ws.cell(row=min_row, column=min_col, value=_cell_value(value))
            continue
        positions = {column.key: i for i, column in enumerate(spec.columns)}
        if spec.row_source:
            codes = {
                str(ws.cell(row=r, column=min_col).value or "").strip(): r
                for r in range(min_row, max_row + 1)
            }
            placed = []
            for row_key, cells in value.items():
                code = _row_code(form, spec, row_key)
                if code not in codes:
                    raise ValueError(f"{key}: the template has no row {code!r}")
                placed.append((codes[code], cells))
            first_input = min_col + ROW_KEY_COLUMNS
        else:
            if len(value) > max_row - min_row + 1:
                raise ValueError(f"{key}: {len(value)} rows do not fit the table")
            placed = [(min_row + i, cells) for i, cells in enumerate(value)]
            first_input = min_col
        for row, cells in placed:
            for column_key, cell_value in cells.items():
                if cell_value is None:
                    continue
                column = first_input + positions[column_key]
                ws.cell(row=row, column=column, value=_cell_value(cell_value))
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def fill_with_errors(
    template: bytes, form: FormSpec, answers: Mapping[str, Any], language: str, count: int = 2
) -> tuple[bytes, list[str]]:
    """The template filled with ``answers`` spoilt by typical errors; (bytes, issue codes)."""
    spoilt, codes = with_errors(form, answers, language, count)
    return fill_workbook(template, form, spoilt), codes


# --------------------------------------------------------------------------------------------
# From the database: the template a state received, filled
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticReturn:
    data: bytes
    answers: Answers
    language: str
    expected_errors: tuple[str, ...] = ()  # issue codes the reader must report


def synthetic_return(
    settings: Settings,
    cycle_id: int,
    state_code: str,
    rng: random.Random,
    *,
    language: str | None = None,
    submitted: dt.date | None = None,
    errors: int = 0,
) -> SyntheticReturn:
    """The state's template for the cycle (in its request's language unless given), filled.

    With ``errors`` > 0 the return carries that many typical errors (see ``with_errors``).
    """
    from sqlalchemy import select

    from mou.cycle.context import activity_codes, species_of, template_for
    from mou.cycle.opening import get_cycle, state_by_code
    from mou.forms import load_form
    from mou.store import models as m
    from mou.store.database import session_scope

    with session_scope(settings) as session:
        cycle = get_cycle(session, cycle_id)
        state = state_by_code(session, state_code)
        if language is None:
            request = session.scalars(
                select(m.ReportRequest).filter_by(cycle_id=cycle.id, state_id=state.id)
            ).one_or_none()
            language = request.language if request else state.language
        template = template_for(session, settings, cycle.id, state.code, language)
        form = load_form(settings.forms_dir, cycle.instrument.code)
        answers = synthetic_answers(
            form,
            state.code,
            language,
            rng,
            species=species_of(cycle.instrument),
            activities=activity_codes(session, cycle.instrument),
            period_end=cycle.period_end,
            submitted=submitted,
            state_name=_text_in(state.name, language),
        )
    if errors:
        data, codes = fill_with_errors(template, form, answers, language, errors)
        return SyntheticReturn(data, answers, language, tuple(codes))
    return SyntheticReturn(fill_workbook(template, form, answers), answers, language)
