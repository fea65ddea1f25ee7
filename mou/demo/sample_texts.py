"""Sample texts for the synthetic returns: what officers write, by field and by language.

Texts are keyed by "table.column" or field key; the typist (``mou.demo.typist``) picks one and
fills its placeholders. Also the words officers type in a boolean cell, and the words that make
the typical errors of ``mou.demo.synthetic.with_errors``.
"""

from __future__ import annotations

from mou.demo.sample_data import Translated

YES: Translated = {"en": "Yes", "ru": "Да", "fr": "Oui"}
NO: Translated = {"en": "No", "ru": "Нет", "fr": "Non"}

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

# What officers type when they have no figure (an error in a number cell).
NO_FIGURE: Translated = {"en": "no data", "ru": "нет данных", "fr": "pas de données"}
NO_DATE: Translated = {"en": "to be confirmed", "ru": "уточняется", "fr": "à confirmer"}
OFF_LIST: Translated = {"en": "partly", "ru": "частично", "fr": "en partie"}
