"""A client of Debian's signed archive, and the vulnerability feed derived from it.

Why a package of its own: the feed (issue 11), the Clair updater data (issue 12) and the
nightly's "did anything change upstream?" (issue 15) all read the same signed facts.
Pure parsers (`deb822`, `version`, `changelog`, `debfile`, `mirrors`) are separate from
the code that does I/O (`client`: HTTP + gpgv; `update`: derive and cache the feed).

Stable entry points:
    pipeline.archive.feed     Advisory, SuiteState, Feed, current_feed, feed_dir
    pipeline.archive.update   FeedRequest, update_feed
    pipeline.archive.client   ArchiveClient (verified InRelease, indices and pool files)
"""
