"""All accounts services over one database, as the gateway and the CLI hold them."""

from __future__ import annotations

from dataclasses import dataclass

import peewee

from kuwa.accounts.audit import Audit
from kuwa.accounts.catalog import Catalog
from kuwa.accounts.codes import Codes
from kuwa.accounts.groups import Groups
from kuwa.accounts.identities import Identities
from kuwa.accounts.service import Accounts
from kuwa.accounts.system import System


@dataclass(frozen=True, slots=True)
class Store:
    db: peewee.Database
    accounts: Accounts
    groups: Groups
    catalog: Catalog
    audit: Audit
    system: System
    codes: Codes
    identities: Identities

    @classmethod
    def over(cls, db: peewee.Database, secret_key: str) -> Store:
        accounts = Accounts(db, secret_key)
        return cls(
            db=db,
            accounts=accounts,
            groups=Groups(db),
            catalog=Catalog(db),
            audit=Audit(db),
            system=System(db),
            codes=Codes(db),
            identities=Identities(db, accounts.fernet),
        )
