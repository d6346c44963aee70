"""A Debian base survives an engine that starts empty, as a CI runner's does every night.

Without it, each night's runner bootstraps new bases, whose new ids change the fingerprint
of every image on them: the whole matrix would be rebuilt and republished every night, and
no night could be a no-op. The base is kept in the Drydock cache (which the nightly
workflow carries from night to night) and loaded back, by id, when the engine lacks it.

Real engine, real `docker save`/`docker load`; the base is Drydock's own bookworm base under
a tag of this test's own, so no other test's base is touched.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from pathlib import Path

from pipeline.build.base import build_base, fresh_base, restore_kept
from pipeline.descriptors.load import load_plan
from pipeline.settings import Settings, default_cache
from pipeline.tools import docker

ROOT = Path(__file__).resolve().parents[2]


def test_a_base_the_engine_lost_comes_back_from_the_cache_by_id(tmp_path: Path) -> None:
    settings = Settings(root=ROOT, cache=default_cache())
    plan = load_plan(settings.descriptors, settings.templates)
    shared = plan.get("base-bookworm")
    # Drydock's own base, fresh (bootstrapped now only if the engine has none or it is old).
    base = build_base(shared, settings.work, plan.base_max_age_hours, lambda _: None)
    target = dataclasses.replace(
        shared, local_tag=f"drydock/keptbase-{uuid.uuid4().hex[:8]}:bookworm"
    )
    docker.tag(base.image_id, target.local_tag)
    cache = tmp_path / "cache"
    tarball = cache / "bases" / f"{target.name}.tar"
    id_file = cache / "bases" / f"{target.name}.id"
    steps: list[str] = []
    try:
        first = build_base(
            target, tmp_path / "work", plan.base_max_age_hours, steps.append, cache=cache
        )
        assert (first.reused, first.image_id) == (True, base.image_id)
        assert id_file.read_text(encoding="utf-8").strip() == base.image_id
        saved_at = tarball.stat().st_mtime_ns

        # The engine loses the base: without the kept copy it would be bootstrapped anew.
        docker.untag(target.local_tag)
        assert docker.inspect(target.local_tag) is None
        assert fresh_base(target, plan.base_max_age_hours, time.time()) is None

        steps.clear()
        second = build_base(
            target, tmp_path / "work", plan.base_max_age_hours, steps.append, cache=cache
        )
        assert (second.reused, second.image_id) == (True, base.image_id), steps
        # Loaded, then judged fresh as any base is; never bootstrapped ("import" never ran).
        assert steps == ["restored from the cache (the engine had lost it)", "fresh, reused"]
        assert tarball.stat().st_mtime_ns == saved_at  # the same image is not saved again

        # A kept file that is not the recorded base is dropped, never used.
        docker.untag(target.local_tag)
        tarball.write_bytes(b"not a docker archive")
        assert restore_kept(target, cache) is False
        assert docker.inspect(target.local_tag) is None
        assert not tarball.exists() and not id_file.exists()
    finally:
        if docker.inspect(target.local_tag) is not None:
            docker.untag(target.local_tag)
