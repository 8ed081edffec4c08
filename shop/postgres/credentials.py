"""The database backend's side of secret rotation: a login the database refuses is tried once more with the
credentials the database secret holds now (shop.secrets.database_credentials_reread)."""

from django.db.backends.postgresql import base

from shop.secrets import database_credentials_reread


class RereadCredentialsOnRefusal:
    """Mixed into the backend's DatabaseWrapper, before Django's own."""

    def get_new_connection(self, conn_params):
        try:
            return super().get_new_connection(conn_params)
        except base.Database.OperationalError as error:
            if not database_credentials_reread(self.settings_dict, conn_params, error):
                raise
        return super().get_new_connection(self.get_connection_params())
