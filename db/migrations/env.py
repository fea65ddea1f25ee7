"""Alembic environment: the engine comes from the service settings (mou.store.database)."""

from __future__ import annotations

from alembic import context

from mou.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        from mou.settings import get_settings
        from mou.store.database import get_engine

        engine = get_engine(get_settings())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
