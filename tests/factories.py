"""factory_boy factories: users with roles, coins with real (generated) photos, predictions, model versions."""

from __future__ import annotations

import hashlib
import io

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.base import ContentFile
from PIL import Image

from predictions.models import Coin, Correction, Prediction
from predictions.roles import role_groups_ensure
from registry.models import ModelVersion


def jpeg_bytes(color: tuple[int, int, int] = (180, 120, 60), size: tuple[int, int] = (160, 160), seed: int = 0) -> bytes:
    """A small valid JPEG; `seed` varies the pixels so hashes differ."""
    image = Image.new("RGB", size, color)
    image.putpixel((seed % size[0], (seed // size[0]) % size[1]), (seed % 256, 7, 9))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def roles(self, create: bool, extracted, **kwargs) -> None:
        if create and extracted:
            if Group.objects.filter(name__in=extracted).count() < len(set(extracted)):
                role_groups_ensure()  # a transactional test flushed the migration's groups
            for role in extracted:
                self.groups.add(Group.objects.get(name=role))
        if create:
            self.save()


class CoinFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Coin
        skip_postgeneration_save = True

    owner = factory.SubFactory(UserFactory)
    source = Coin.Source.UPLOAD
    status = Coin.Status.PENDING

    @factory.lazy_attribute_sequence
    def front_image(self, n):
        return ContentFile(jpeg_bytes(seed=2 * n), name="front.jpg")

    @factory.lazy_attribute_sequence
    def back_image(self, n):
        return ContentFile(jpeg_bytes(color=(90, 90, 110), seed=2 * n + 1), name="back.jpg")

    @factory.lazy_attribute
    def front_sha256(self):
        self.front_image.seek(0)
        return hashlib.sha256(self.front_image.read()).hexdigest()

    @factory.lazy_attribute
    def back_sha256(self):
        self.back_image.seek(0)
        return hashlib.sha256(self.back_image.read()).hexdigest()


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion
        django_get_or_create = ("name", "version")

    name = "coin-year"
    version = factory.Sequence(lambda n: n + 1)
    run_id = factory.Sequence(lambda n: f"run{n:032d}")
    metrics = factory.LazyFunction(lambda: {"mae": 12.5, "baseline_mae": 81.0})


class PredictionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prediction

    coin = factory.SubFactory(CoinFactory)
    year = 1874
    interval_low = factory.LazyAttribute(lambda p: p.year - 5)
    interval_high = factory.LazyAttribute(lambda p: p.year + 5)
    model_version = factory.SubFactory(ModelVersionFactory)
    latency_ms = 3.0


class CorrectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Correction

    coin = factory.SubFactory(CoinFactory)
    curator = factory.SubFactory(UserFactory)
    old_year = 1874
    new_year = 1880
