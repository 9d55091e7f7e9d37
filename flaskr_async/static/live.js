// The live index: hear of new, edited and deleted posts through Server-Sent Events.
// Loaded only on the first page of the index (flaskr_async/live/__init__.py); text goes in through
// textContent alone, never as HTML.
//
// One tab per browser holds the stream. Over HTTP/1.1 a browser opens at most 6 connections
// to a host, so a stream in every open index tab would leave a 7th tab of the site hanging.
// The tab holding a Web Lock (the leader) listens, and relays each event to the other tabs on
// a BroadcastChannel; when it closes or navigates away the lock passes to another tab, which
// opens its own stream from the last event it saw. Without those APIs each tab listens alone.
(() => {
  const NAME = "flaskr-live-index";
  const KINDS = ["created", "updated", "deleted", "reload"];
  const RECENT = 100; // events kept to catch up a tab that opened while they were relayed
  const script = document.currentScript;
  const stream = new URL(script.dataset.stream, window.location.href);
  // Events up to the page's own are already in it (another worker, or the leader, may send
  // them again).
  const floor = Number(stream.searchParams.get("since") || 0);
  const shared = "locks" in navigator && "BroadcastChannel" in window;
  const channel = shared ? new BroadcastChannel(NAME) : null;
  const created = new Set();
  const recent = [];
  let seen = 0; // the newest event id this tab has heard, from its stream or relayed
  let source = null;
  let retry = null;
  let leading = false;
  let leave = () => {};
  let notice = null;

  // The live region wraps the link, so the link keeps its own name for assistive tech; it is
  // in the page before any text goes in, so screen readers announce the text.
  const status = document.createElement("div");
  status.setAttribute("role", "status");
  document.querySelector("main.content > header").after(status);

  // "No posts yet." on an empty index: hidden while a notice offers new posts, which it
  // would contradict.
  const empty = document.querySelector("main.content > .empty");

  const articleOf = (id) => document.querySelector(`article[data-post-id="${Number(id)}"]`);

  function say(text) {
    if (notice === null) {
      notice = document.createElement("a");
      notice.className = "live-notice";
      notice.href = script.dataset.index;
      status.append(notice);
    }
    notice.textContent = text;
    if (empty !== null) {
      empty.hidden = true;
    }
  }

  function countNew() {
    if (created.size > 0) {
      say(created.size === 1 ? "1 new post" : `${created.size} new posts`);
    } else if (notice !== null) {
      notice.remove();
      notice = null;
      if (empty !== null) {
        empty.hidden = false;
      }
    }
  }

  // As the index shows an edited post after a reload (templates/blog/index.html).
  function markEdited(article) {
    const about = article.querySelector(".about");
    if (about !== null && about.querySelector(".edited") === null) {
      const edited = document.createElement("span");
      edited.className = "edited";
      edited.textContent = "(edited)";
      about.append(" ", edited);
    }
  }

  function mark(article, text) {
    let note = article.querySelector(".live-mark");
    if (note === null) {
      note = document.createElement("p");
      note.className = "live-mark";
      article.append(note);
    }
    note.textContent = text;
  }

  // An event's data names the post alone (any other field is ignored), so an edit is marked
  // rather than shown: a reload shows the new text. A handler may run twice for one event
  // (a catch-up repeats some), to the same effect.
  const handlers = {
    created(post) {
      if (articleOf(post.id) === null) {
        created.add(post.id);
        countNew();
      }
    },
    updated(post) {
      const article = articleOf(post.id);
      if (article !== null && !article.classList.contains("deleted")) {
        article.classList.add("updated");
        markEdited(article);
        mark(article, "This post was edited.");
      }
    },
    deleted(post) {
      if (created.delete(post.id)) {
        countNew();
      }
      const article = articleOf(post.id);
      if (article !== null) {
        article.classList.add("deleted");
        mark(article, "This post was deleted.");
      }
    },
  };

  // Apply one event, heard on this tab's stream or relayed by the leader.
  function receive({ kind, id, data }) {
    if (kind === "reload") {
      // Missed more than the server remembers: only a reload shows it all.
      say("New posts: reload the page");
      return;
    }
    if (Number(id) > seen) {
      seen = Number(id);
      recent.push({ kind, id, data });
      if (recent.length > RECENT) {
        recent.shift();
      }
    }
    if (Number(id) > floor) {
      handlers[kind](JSON.parse(data));
    }
  }

  function connect() {
    if (seen > 0) {
      stream.searchParams.set("since", seen);
    }
    const events = new EventSource(stream);
    source = events;
    for (const kind of KINDS) {
      events.addEventListener(kind, (event) => {
        const message = { kind, id: event.lastEventId, data: event.data };
        channel?.postMessage(message);
        receive(message);
      });
    }
    events.addEventListener("error", () => {
      // The browser retries a dropped stream by itself, but not a refused one (a 503 from
      // a full or stopping worker): try again later, spread out.
      if (events.readyState === EventSource.CLOSED && source === events) {
        retry = setTimeout(connect, 5000 + Math.random() * 5000);
      }
    });
  }

  function start() {
    if (channel === null) {
      connect();
      return;
    }
    // A tab that opened (or came back) just now may have missed relayed events: ask the
    // leader to repeat those newer than what this page shows.
    channel.postMessage({ since: Math.max(seen, floor) });
    const request = new AbortController();
    let release = null;
    // Granted when no other tab leads; held until this page goes (or pagehide resolves it).
    const held = navigator.locks.request(NAME, { signal: request.signal }, () => {
      leading = true;
      connect();
      return new Promise((resolve) => {
        release = resolve;
      });
    });
    held.catch(() => {}); // aborted while waiting: the page went before it led
    leave = () => {
      request.abort();
      release?.();
      leading = false;
    };
  }

  function stop() {
    clearTimeout(retry);
    source?.close();
    source = null;
    leave();
  }

  channel?.addEventListener("message", ({ data }) => {
    if (data.since === undefined) {
      receive(data);
    } else if (leading) {
      for (const message of recent.filter((event) => Number(event.id) > data.since)) {
        channel.postMessage(message);
      }
    }
  });
  // Closing the stream and leaving the lock also lets the page into the back/forward cache;
  // shown from it again, the page rejoins.
  window.addEventListener("pagehide", stop);
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) {
      start();
    }
  });
  start();
})();
