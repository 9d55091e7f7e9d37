// The live index: hear of new, edited and deleted posts through Server-Sent Events.
// Loaded only on the first page of the index (flaskr_async/live.py); text goes in through
// textContent alone, never as HTML.
(() => {
  const script = document.currentScript;
  const stream = new URL(script.dataset.stream, window.location.href);
  // Events up to the page's own are already in it (another worker may send them again).
  const floor = Number(stream.searchParams.get("since") || 0);
  const created = new Set();
  let lastId = null;
  let notice = null;

  // The live region wraps the link, so the link keeps its own name for assistive tech; it is
  // in the page before any text goes in, so screen readers announce the text.
  const status = document.createElement("div");
  status.setAttribute("role", "status");
  document.querySelector("main.content > header").after(status);

  const articleOf = (id) => document.querySelector(`article[data-post-id="${Number(id)}"]`);

  function say(text) {
    if (notice === null) {
      notice = document.createElement("a");
      notice.className = "live-notice";
      notice.href = script.dataset.index;
      status.append(notice);
    }
    notice.textContent = text;
  }

  function countNew() {
    if (created.size > 0) {
      say(created.size === 1 ? "1 new post" : `${created.size} new posts`);
    } else if (notice !== null) {
      notice.remove();
      notice = null;
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
  // rather than shown: a reload shows the new text.
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

  function connect() {
    if (lastId !== null) {
      stream.searchParams.set("since", lastId);
    }
    const source = new EventSource(stream);
    for (const [kind, handle] of Object.entries(handlers)) {
      source.addEventListener(kind, (event) => {
        lastId = event.lastEventId;
        if (Number(event.lastEventId) > floor) {
          handle(JSON.parse(event.data));
        }
      });
    }
    // Missed more than the server remembers: only a reload shows it all.
    source.addEventListener("reload", () => say("New posts: reload the page"));
    source.addEventListener("error", () => {
      // The browser retries a dropped stream by itself, but not a refused one (a 503 from
      // a full or stopping worker): try again later, spread out.
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(connect, 5000 + Math.random() * 5000);
      }
    });
  }

  connect();
})();
