"""Where the services' databases go: the data directory, or a directory of its own per database."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.services import PROVIDER_DATABASE, service_env


def test_each_database_is_in_the_data_dir_unless_given_a_directory_of_its_own(tmp_path: Path) -> None:
    own = tmp_path / "small-disk"
    env = service_env("127.0.0.1:9092", "http://registry", tmp_path, database_dirs={PROVIDER_DATABASE: own})
    assert env["order"]["DATABASE_URL"] == f"sqlite:///{tmp_path}/order-service.db"
    assert env["fulfillment"]["DATABASE_URL"] == f"sqlite:///{tmp_path}/fulfillment-service.db"
    assert env["fulfillment"]["PROVIDER_DATABASE_URL"] == f"sqlite:///{own}/shipping-provider.db"


def test_an_unknown_database_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="orders"):
        service_env("127.0.0.1:9092", "http://registry", tmp_path, database_dirs={"orders": tmp_path})
