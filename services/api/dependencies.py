"""What a request handler may ask for, as ``Annotated`` aliases over the app's shared state.

The state is built by ``create_app`` (configuration) and its lifespan (engine, Kafka
client); handlers reach it through these dependencies and never through globals.

Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in its thread
pool, a thread hand-off per dependency and request for what is an attribute read. The
read routes, the busiest, take the one ``State`` dependency and read the pool and the
playbook from it, since each dependency FastAPI resolves costs about as much as the
statement such a route runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from services.api.database import ReadPool
from services.api.readiness import KafkaProbe
from shared.domain.playbook import Playbook
from shared.playbook_file import PlaybookLayers
from shared.playbook_refresh import PlaybookRefresher
from shared.settings import Settings
from shared.store.unit_of_work import SqlUnitOfWork, UnitsOfWork


@dataclass(slots=True)
class ApiState:
    """Configuration fixed at construction plus the resources the lifespan opens and closes."""

    settings: Settings
    playbook: Playbook  # live: the refresher installs the shops' stored versions in it while the app runs
    layers: PlaybookLayers  # the playbook file's layers, which stored versions are composed over
    token_digests: tuple[bytes, ...]
    read_token_digests: tuple[bytes, ...] = ()
    engine: AsyncEngine | None = None
    reads: ReadPool | None = None
    kafka: KafkaProbe | None = field(default=None)
    refresher: PlaybookRefresher | None = None

    def read_pool(self) -> ReadPool:
        if self.reads is None:
            raise RuntimeError("the read pool is only available while the app's lifespan runs")
        return self.reads


def state_of(request: Request) -> ApiState:
    state = request.app.state.api
    assert isinstance(state, ApiState)
    return state


async def get_state(request: Request) -> ApiState:
    return state_of(request)


State = Annotated[ApiState, Depends(get_state)]


async def get_engine(state: State) -> AsyncEngine:
    if state.engine is None:
        raise RuntimeError("the database engine is only available while the app's lifespan runs")
    return state.engine


Engine = Annotated[AsyncEngine, Depends(get_engine)]


async def get_units(engine: Engine) -> UnitsOfWork:
    """Units of work for the write use cases (redemption, scheduler runs, quarantine release)."""
    return SqlUnitOfWork.factory(engine)


Units = Annotated[UnitsOfWork, Depends(get_units)]


async def get_playbook(state: State) -> Playbook:
    return state.playbook


Playbooks = Annotated[Playbook, Depends(get_playbook)]
