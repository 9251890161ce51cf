// The playground page: one WebSocket (/playground/ws) carries what the visitor types or taps as any of the
// personas, and brings back every reply and notice, live. History is replayed by the server on (re)connect.
(function () {
  "use strict";
  var root = document.querySelector(".pg");
  var tabs = Array.prototype.slice.call(document.querySelectorAll(".tab"));
  var chats = {};
  document.querySelectorAll(".chat").forEach(function (el) { chats[el.dataset.persona] = el; });
  var form = document.querySelector(".composer");
  var input = form.querySelector(".text");
  var fileInput = form.querySelector("input[type=file]");
  var status = document.querySelector(".pg-status");
  var current = tabs[0].dataset.persona;
  var socket = null, retry = 0, pending = [], seen = {};

  function select(persona) {
    current = persona;
    tabs.forEach(function (tab) {
      var on = tab.dataset.persona === persona;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      if (on) { tab.querySelector(".unread").hidden = true; }
    });
    Object.keys(chats).forEach(function (key) { chats[key].hidden = key !== persona; });
    scrollDown(persona);
    input.focus();
  }
  tabs.forEach(function (tab) { tab.addEventListener("click", function () { select(tab.dataset.persona); }); });

  function scrollDown(persona) {
    var list = chats[persona].querySelector(".messages");
    list.scrollTop = list.scrollHeight;
    window.scrollTo(0, document.body.scrollHeight);
  }

  function id() { return Date.now().toString(36) + Math.random().toString(36).slice(2, 10); }

  // Bot text is plain text (never HTML); links inside it become clickable.
  function textNode(parent, text) {
    var parts = String(text || "").split(/(https?:\/\/[^\s]+)/g);
    parts.forEach(function (part, i) {
      if (i % 2 === 1) {
        var a = document.createElement("a");
        a.href = part; a.textContent = part; a.target = "_blank"; a.rel = "noopener";
        parent.appendChild(a);
      } else if (part) { parent.appendChild(document.createTextNode(part)); }
    });
  }

  function render(m) {
    if (seen[m.id]) { return; }
    seen[m.id] = true;
    var chat = chats[m.persona];
    if (!chat) { return; }
    var li = document.createElement("li");
    li.className = "msg " + (m.direction === "in" ? "mine" : "bot") + (m.tap ? " tap" : "");
    if (m.photo && m.file) {
      var img = document.createElement("img");
      img.src = m.file; img.alt = ""; img.className = "photo";
      li.appendChild(img);
    }
    var p = document.createElement("p");
    textNode(p, m.text);
    li.appendChild(p);
    if (m.document && m.file) {
      var doc = document.createElement("a");
      doc.href = m.file; doc.className = "document"; doc.textContent = "⬇ " + m.document;
      doc.setAttribute("download", m.document);
      li.appendChild(doc);
    }
    (m.buttons || []).forEach(function (row) {
      var div = document.createElement("div");
      div.className = "buttons";
      row.forEach(function (b) {
        var el;
        if (b.url) {
          el = document.createElement("a");
          el.href = b.url; el.target = "_blank"; el.rel = "noopener"; el.className = "button link";
        } else {
          el = document.createElement("button");
          el.type = "button"; el.className = "button choice";
          el.addEventListener("click", function () {
            send({ type: "tap", persona: m.persona, button: b.data, label: b.label });
          });
        }
        el.textContent = b.label;
        div.appendChild(el);
      });
      li.appendChild(div);
    });
    chat.querySelector(".messages").appendChild(li);
    if (m.persona === current) { scrollDown(current); }
    else if (m.direction === "out") {
      tabs.forEach(function (tab) { if (tab.dataset.persona === m.persona) { tab.querySelector(".unread").hidden = false; } });
    }
  }

  function send(data) {
    data.client_id = data.client_id || id();
    if (socket && socket.readyState === 1) { socket.send(JSON.stringify(data)); }
    else { pending.push(data); }
  }

  function connect() {
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/playground/ws";
    socket = new WebSocket(url);
    socket.onopen = function () {
      retry = 0;
      status.textContent = status.dataset.online;
      root.classList.remove("offline");
      socket.send(JSON.stringify({ type: "hello" }));
      while (pending.length) { socket.send(JSON.stringify(pending.shift())); }
    };
    socket.onmessage = function (event) {
      var data = JSON.parse(event.data);
      if (data.type === "history") { data.messages.forEach(render); }
      else if (data.type === "message") { render(data); }
      else if (data.type === "error") { status.textContent = data.text; }
    };
    socket.onclose = function () {
      status.textContent = status.dataset.offline;
      root.classList.add("offline");
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 250 * Math.pow(2, retry));
    };
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    send({ type: "send", persona: current, text: text });
    input.value = "";
  });

  fileInput.addEventListener("change", function () {
    var file = fileInput.files[0];
    if (!file) { return; }
    var reader = new FileReader();
    reader.onload = function () {
      var b64 = String(reader.result).split(",")[1] || "";
      send({ type: "send", persona: current, text: input.value.trim(), photo_b64: b64 });
      input.value = ""; fileInput.value = "";
    };
    reader.readAsDataURL(file);
  });

  connect();
  select(current);
})();
