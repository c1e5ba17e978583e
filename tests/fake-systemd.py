# SPDX-License-Identifier: LGPL-2.1-or-later
'''A systemd Manager with FreezeUnit and ThawUnit, for tests/test-quiesce-systemd.c

A python3-dbusmock template: python3 -m dbusmock --template tests/fake-systemd.py
-p '{"hang": {"FreezeUnit": ["hang.scope"]}, "fail": {"gone.scope": ["NAME", "text"]}}'

Every call is logged (org.freedesktop.DBus.Mock.GetCalls). A unit listed
under a method in "hang" is never answered for that method, one in "fail" is
answered with that D-Bus error; every other call succeeds at once.
'''

import dbus

BUS_NAME = 'org.freedesktop.systemd1'
MAIN_OBJ = '/org/freedesktop/systemd1'
MAIN_IFACE = 'org.freedesktop.systemd1.Manager'
SYSTEM_BUS = True


def load(mock, parameters):
    mock.hang = parameters.get('hang', {})
    mock.fail = parameters.get('fail', {})
    mock.unanswered = []        # the hanging calls' callbacks, kept alive


def answer(mock, method, name, ok_cb, err_cb):
    if name in mock.hang.get(method, []):
        mock.unanswered.append(ok_cb)
    elif name in mock.fail:
        error, message = mock.fail[name]
        err_cb(dbus.exceptions.DBusException(message, name=error))
    else:
        ok_cb()


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='', async_callbacks=('ok_cb', 'err_cb'))
def FreezeUnit(self, name, ok_cb, err_cb):
    answer(self, 'FreezeUnit', name, ok_cb, err_cb)


@dbus.service.method(MAIN_IFACE, in_signature='s', out_signature='', async_callbacks=('ok_cb', 'err_cb'))
def ThawUnit(self, name, ok_cb, err_cb):
    answer(self, 'ThawUnit', name, ok_cb, err_cb)
