"""Who may acknowledge or resolve an incident from LINE, and how people are named in replies.

A person may act on an incident when they are a member (config ``people[].teams``) of the team
that owns it: the team of the incident's system, or, for Fao's own incidents (system
``fao-platform``: zone problems, silent probers), every team with ``platform: true``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from fao.gateway.replies import Replies
from fao.schemas import PLATFORM_SYSTEM, Incident, Person, System, Team

COMMAND_SOURCES: Final = ("line", "cli", "api")
AUTOMATIC: Final = "fao:auto"


def owning_teams(incident: Incident, system: System | None, teams: Iterable[Team]) -> set[str]:
    if incident.system_id == PLATFORM_SYSTEM:
        return {team.id for team in teams if team.platform}
    return {system.team} if system is not None else set()


def may_act(person: Person, owners: set[str]) -> bool:
    return not owners.isdisjoint(person.teams)


def is_member(person: Person, team_id: str) -> bool:
    """``person`` is in team ``team_id`` (config ``people[].teams``): may answer its owner review."""
    return team_id in person.teams


def display_actor(recorded: str | None, replies: Replies) -> str:
    """A name from the correlator's ``<source>:<name>`` (``line:สมชาย`` → ``สมชาย``)."""
    if not recorded or not recorded.strip():
        return replies.someone
    if recorded == AUTOMATIC:
        return replies.fao_auto
    source, sep, name = recorded.partition(":")
    return name.strip() if sep and source in COMMAND_SOURCES and name.strip() else recorded
