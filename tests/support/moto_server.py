"""moto_server, with DynamoDB requests handled one at a time.

Run with the project venv's Python, with moto_server's arguments:
    .local/venv/bin/python tests/support/moto_server.py -H 127.0.0.1 -p 5000

In AWS, a DynamoDB conditional write or transaction is atomic. moto's server handles
requests on concurrent threads and its DynamoDB backend takes no lock: two concurrent
conditional writes can both pass their condition, and a cancelled TransactWriteItems rolls
its tables back to a copy taken when it started, erasing writes committed meanwhile. Tests of
concurrent claims and transitions would then test moto's races, so this wraps moto's WSGI
application in a lock for DynamoDB requests (those whose X-Amz-Target starts with
"DynamoDB_"). Other services stay concurrent (an SQS long poll must not block the rest).
"""

import threading

import moto.server as server

_dynamodb = threading.Lock()
_run_simple = server.run_simple


def _serialize_dynamodb(app):
    def application(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with _dynamodb:
                # Produce the whole response inside the lock.
                return list(app(environ, start_response))
        return app(environ, start_response)

    return application


def _run_simple_serialized(host, port, application, **options):
    return _run_simple(host, port, _serialize_dynamodb(application), **options)


server.run_simple = _run_simple_serialized

if __name__ == "__main__":
    server.main()
