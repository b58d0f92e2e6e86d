"""The district configuration: what the IOC serves (units), watches (devices) and expects (targets).

* :mod:`ioc.district.models`: the pydantic models of ``config/district.yaml``;
* :mod:`ioc.district.loader`: :func:`load_district` and :func:`check_district` (every error, with its path);
* :mod:`ioc.district.seed` / :mod:`ioc.district.bootstrap`: write it into the database;
* :mod:`ioc.district.synth`: the synthetic polygons of the sample district.
"""

from ioc.district.loader import ConfigError, DistrictConfigError, check_district, load_district, validate_district
from ioc.district.models import District

__all__ = ["ConfigError", "District", "DistrictConfigError", "check_district", "load_district", "validate_district"]
